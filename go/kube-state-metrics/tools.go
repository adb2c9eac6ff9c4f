//go:build tools

// Package tools pins the kube-state-metrics release this module builds (see tool.toml).
package tools

import _ "k8s.io/kube-state-metrics/v2"
