// Command etcd is go.etcd.io/etcd/server/v3's own main.go (v3.6.6), in a folder named etcd so that
// `go build` names the binary etcd (the upstream package path ends in /v3 and would build "server").
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
