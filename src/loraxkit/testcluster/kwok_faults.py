"""A KWOK Stage that plays the `lorax` container's faults a kubelet would report: restarts and readiness.

KWOK has no kubelet: a pod's status is whatever its Stages write (kwok v0.8.0, `spec.next.statusTemplate`,
turned into a patch of the `status` subresource, pkg/apis/internalversion/conversion.go:429-450@v0.8.0, a
strategic merge patch for Pods, pkg/utils/lifecycle/next.go:152-159@v0.8.0).
This Stage matches only a Running pod carrying the annotation RESTARTS, and only while the `lorax`
container's status differs from what the annotations ask; so it is inert for every other pod and applies
once per change (the patched status no longer differs). A test sets the annotations with `set_lorax_fault`:

* RESTARTS = "N": the container has restarted N times (restartCount N, lastState terminated with exit 1,
  a new startedAt), as the kubelet reports a crash.
* READY = "false": running but failing its readiness probe (ready false; the pod's Ready and
  ContainersReady conditions False with the kubelet's reason ContainersNotReady); "true" heals it (the
  patch is a strategic merge: `null` removes the reason and message again).

Selectors are jq over the object (pkg/utils/expression/selector.go@v0.8.0: In compares strings and booleans);
templates are Go templates with sprig (pkg/utils/gotpl/funcs.go:36@v0.8.0).
"""

from __future__ import annotations

from kubernetes import client as k8s

RESTARTS = "loraxkit.dev/kwok-lorax-restarts"
READY = "loraxkit.dev/kwok-lorax-ready"
CONTAINER = "lorax"  # the chart's container name, the one the LoraxPod* alerts select

_ACTUAL = f'[.status.containerStatuses[]? | select(.name == "{CONTAINER}")][0]'
_DIFFERS = (
    f'((.metadata.annotations["{RESTARTS}"] // "0") != (({_ACTUAL}.restartCount // 0) | tostring))'
    f' or ((.metadata.annotations["{READY}"] // "true") != (({_ACTUAL}.ready // false) | tostring))'
)

# Placeholders (@NAME@) keep the Go template's braces readable; filled in below.
_STAGE_TEMPLATE = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lorax-container-fault
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.annotations["@RESTARTS@"]'
      operator: 'Exists'
    - key: '@DIFFERS@'
      operator: 'In'
      values: ['true']
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $restarts := index .metadata.annotations "@RESTARTS@" | atoi }}
      {{ $ready := ne (index .metadata.annotations "@READY@" | default "true") "false" }}
      {{ $prev := dict }}
      {{ range .status.containerStatuses }}
      {{ if eq .name "@CONTAINER@" }}{{ $prev = . }}{{ end }}
      {{ end }}
      {{ $restarted := ne (toString ($prev.restartCount | default 0)) (toString $restarts) }}
      conditions:
      - type: Ready
        status: {{ if $ready }}"True"{{ else }}"False"{{ end }}
        lastTransitionTime: {{ $now | Quote }}
        {{ if not $ready }}
        reason: ContainersNotReady
        message: "containers with unready status: [@CONTAINER@]"
        {{ else }}
        reason: null
        message: null
        {{ end }}
      - type: ContainersReady
        status: {{ if $ready }}"True"{{ else }}"False"{{ end }}
        lastTransitionTime: {{ $now | Quote }}
        {{ if not $ready }}
        reason: ContainersNotReady
        message: "containers with unready status: [@CONTAINER@]"
        {{ else }}
        reason: null
        message: null
        {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        started: true
        {{ if eq .name "@CONTAINER@" }}
        ready: {{ $ready }}
        restartCount: {{ $restarts }}
        state:
          running:
            {{ if $restarted }}
            startedAt: {{ $now | Quote }}
            {{ else }}
            startedAt: {{ dig "state" "running" "startedAt" $now $prev | Quote }}
            {{ end }}
        {{ if gt $restarts 0 }}
        lastState:
          terminated:
            exitCode: 1
            reason: Error
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
        {{ end }}
        {{ else }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
        {{ end }}
      {{ end }}
"""
STAGE = (
    _STAGE_TEMPLATE.replace("@DIFFERS@", _DIFFERS)
    .replace("@RESTARTS@", RESTARTS)
    .replace("@READY@", READY)
    .replace("@CONTAINER@", CONTAINER)
)


def set_lorax_fault(core: k8s.CoreV1Api, namespace: str, pod: str, *, restarts: int, ready: bool) -> None:
    """Ask KWOK (through STAGE) for the lorax container's restart count and readiness."""
    body = {"metadata": {"annotations": {RESTARTS: str(restarts), READY: str(ready).lower()}}}
    core.patch_namespaced_pod(pod, namespace, body)
