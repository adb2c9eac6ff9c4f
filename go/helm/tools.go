//go:build tools

// Package tools pins the helm CLI this module builds (see tool.toml).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
