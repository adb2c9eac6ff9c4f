// Command kwok-stages prints the Stage objects `kwokctl` gives a kwok controller by default (node
// initialise, heartbeat with Leases, pod ready / complete / delete), taken from the KWOK module itself so
// they match the kwok binary built beside it. The standalone `kwok` has no built-in stages: it reads them
// from --config (sigs.k8s.io/kwok pkg/kwok/cmd/root.go: "no stages found").
package main

import (
	"fmt"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	stages := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for _, stage := range stages {
		fmt.Printf("---\n%s\n", strings.TrimSpace(stage))
	}
}
