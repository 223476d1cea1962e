// Package conformance is the externalgrpc conformance sequence, written once
// against Cluster Autoscaler's own cloudprovider API. It is a module of its
// own so that each test module compiles it against the CA release that module
// pins (test/ca: 1.36.1, test/ca-legacy: 1.34.1): the import paths are the
// same in both releases, the code behind them is the release's.
package conformance

import (
	"strings"
	"testing"

	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"

	"autoscaler-cloudscale/test/ca/harness"
)

// Release is the CA release a test module builds against.
type Release struct {
	Version string // e.g. "1.36.1", for messages
	// Build is the release's externalgrpc.BuildExternalGrpc with
	// --cloud-config set to this file, as CA's main calls it.
	Build func(cloudConfig string) cloudprovider.CloudProvider
}

// ProviderConfig is the product's configuration for the CA tests: a tainted
// and labelled group from zero, a group with a minimum, option overrides and
// a fixed price, a larger flavor (to compare prices) and a GPU flavor.
const ProviderConfig = `clusterName: conformance
startupGrace: 0s
createConcurrency: 10
nodeGroups:
  - name: workers
    flavor: flex-8-2
    image: custom:talos-1.13.2
    zone: lpg1
    min: 0
    max: 10
    volumeSizeGb: 50
    labels: {team: blue}
    taints: [{key: dedicated, value: batch, effect: NoSchedule}]
  - name: tuned
    flavor: plus-16-4
    image: debian-13
    zone: rma1
    min: 1
    max: 3
    pricePerHour: 0.25
    options:
      scaleDownUtilizationThreshold: 0.3
      scaleDownUnneededTime: 5m
      maxNodeProvisionTime: 20m
  - name: large
    flavor: flex-32-8
    image: debian-13
    zone: lpg1
    min: 0
    max: 2
  - name: gpu
    flavor: gpu2-128-16-1-200
    image: debian-13
    zone: rma1
    min: 0
    max: 1
`

// Env is one simulator, the product's server against it, and CA's provider
// built from a cloud-config that points at that server.
type Env struct {
	Mode  string // "mTLS" or "h2c"
	Dir   string
	Sim   *harness.Sim
	Srv   *harness.Server
	Certs *harness.Certs // nil over h2c
	CA    cloudprovider.CloudProvider
}

// Start runs the simulator and the product's server (over mutual TLS or
// h2c) and builds CA's provider from a cloud-config for it (grpc_timeout 5s).
// A failing test prints the tail of the server's output.
func Start(t *testing.T, r Release, mtls bool) *Env {
	t.Helper()
	bin := harness.Binary(t)
	e := &Env{Dir: t.TempDir(), Mode: "h2c"}
	e.Sim = harness.StartSim(t, bin, "--boot-seconds", "1")
	cfg := harness.WriteFile(t, e.Dir, "provider.yaml", ProviderConfig)
	if mtls {
		e.Mode = "mTLS"
		e.Certs = harness.GenerateCerts(t, e.Dir)
	}
	e.Srv = harness.StartServe(t, bin, cfg, e.Sim, e.Certs)
	e.CA = r.Build(harness.CloudConfig(t, e.Dir, "cloud-config.yaml", e.Srv.Addr, e.Certs, "5s"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve output (tail):\n%s", tail(e.Srv.Output(), 60))
		}
	})
	return e
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
