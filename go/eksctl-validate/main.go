// eksctl-validate runs eksctl's own config loading, defaulting and validation on a ClusterConfig file, with no
// AWS call, and prints the result as one JSON object on stdout.
//
// It follows `eksctl create cluster -f FILE` up to its first AWS call, at the eksctl commit go.mod pins:
//   - pkg/ctl/cmdutils/configfile.go: NewCreateClusterLoader(...).Load()  (decode, metadata, add-ons, Pod Identity)
//   - pkg/ctl/cmdutils/cmd.go: (*Cmd).InitializeClusterConfig()  (SetClusterConfigDefaults, ValidateClusterConfig,
//     node-group defaults and ValidateNodeGroup / ValidateManagedNodeGroup)
//   - pkg/ctl/create/cluster.go: doCreateCluster's ValidatePrivateCluster, ValidateClusterEndpointConfig and
//     accessentry.ValidateAPIServerAccess.
//
// What it skips is what needs AWS: resolving metadata.version against EKS's DescribeClusterVersions (the file's
// version is kept as written), the region check, zone selection and instance-type offerings, AMI resolution.
//
// Exit status: 0 when eksctl accepts the file, 1 when it rejects it, 2 on a usage error.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kris-nova/logger"
	"github.com/spf13/cobra"

	"github.com/weaveworks/eksctl/pkg/accessentry"
	api "github.com/weaveworks/eksctl/pkg/apis/eksctl.io/v1alpha5"
	"github.com/weaveworks/eksctl/pkg/ctl/cmdutils"
	"github.com/weaveworks/eksctl/pkg/ctl/cmdutils/filter"
)

// Result is what the program prints.
type Result struct {
	File     string             `json:"file"`
	Accepted bool               `json:"accepted"`
	Stage    string             `json:"stage,omitempty"` // where eksctl stopped: load | initialize | create
	Error    string             `json:"error,omitempty"` // eksctl's own message
	Warnings []string           `json:"warnings"`
	Skipped  []string           `json:"skipped"`
	Config   *api.ClusterConfig `json:"config,omitempty"` // the defaulted config, as eksctl would go on with it
}

var skipped = []string{
	"metadata.version is not resolved against EKS's DescribeClusterVersions (AWS call); kept as written",
	"the region is not checked against the regions AWS reports",
	"availability zones are not selected and instance-type offerings are not checked (AWS calls)",
	"AMIs are not resolved (SSM call)",
}

func run(file string, logs *bytes.Buffer) Result {
	res := Result{File: file, Warnings: []string{}, Skipped: skipped}
	cfg := api.NewClusterConfig()
	cobraCmd := &cobra.Command{Use: "create cluster"} // no flag is set: every flag check passes as with -f alone
	cmd := &cmdutils.Cmd{
		CobraCommand:      cobraCmd,
		ClusterConfig:     cfg,
		ClusterConfigFile: file,
		Validate:          true, // eksctl's default (cmdutils/cmd.go)
	}
	params := &cmdutils.CreateClusterCmdParams{}
	fail := func(stage string, err error) Result {
		res.Stage, res.Error = stage, err.Error()
		res.Warnings = warnings(logs)
		res.Config = cmd.ClusterConfig
		return res
	}
	if err := cmdutils.NewCreateClusterLoader(cmd, filter.NewNodeGroupFilter(), api.NewNodeGroup(), params).Load(); err != nil {
		return fail("load", err)
	}
	cfg = cmd.ClusterConfig
	if cfg.Metadata.Name != "" && api.IsInvalidNameArg(cfg.Metadata.Name) {
		return fail("create", api.ErrInvalidName(cfg.Metadata.Name))
	}
	if err := cmd.InitializeClusterConfig(); err != nil {
		return fail("initialize", err)
	}
	if err := cfg.ValidatePrivateCluster(); err != nil {
		return fail("create", err)
	}
	if err := cfg.ValidateClusterEndpointConfig(); err != nil {
		return fail("create", err)
	}
	if err := accessentry.ValidateAPIServerAccess(cfg); err != nil {
		return fail("create", err)
	}
	res.Accepted = true
	res.Warnings = warnings(logs)
	res.Config = cfg
	return res
}

const warningTag = "warning\t"

// logLine formats eksctl's log calls (kris-nova/logger) as one tagged line each, so warnings can be picked out.
func logLine(prefix, format string, a ...interface{}) string {
	msg := strings.Join(strings.Fields(fmt.Sprintf(format, a...)), " ")
	return strings.ToLower(strings.TrimSpace(prefix)) + "\t" + msg + "\n"
}

// warnings picks eksctl's logger.Warning lines.
func warnings(logs *bytes.Buffer) []string {
	out := []string{}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.HasPrefix(line, warningTag) {
			out = append(out, strings.TrimPrefix(line, warningTag))
		}
	}
	return out
}

func main() {
	withConfig := flag.Bool("config", false, "include the defaulted ClusterConfig in the output")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: eksctl-validate [--config] CLUSTER.yaml\n\n"+
			"Runs eksctl's own loading, defaulting and validation (no AWS call) and prints JSON.\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	var logs bytes.Buffer
	logger.Writer = &logs
	logger.Line = logLine
	logger.BitwiseLevel = logger.LogWarning | logger.LogCritical
	res := run(flag.Arg(0), &logs)
	if !*withConfig {
		res.Config = nil
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if !res.Accepted {
		os.Exit(1)
	}
}
