package ca

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"autoscaler-cloudscale/test/ca/harness"
	"autoscaler-cloudscale/test/ca/internal/caclient"
)

const (
	clusterName = "conformance"
	clusterTag  = "autoscaler-cloudscale-cluster"
	groupTag    = "autoscaler-cloudscale-group"
	// groupLabel is the node label the product puts on a group's nodes.
	groupLabel = "autoscaler-cloudscale/node-group"
)

// providerConfig is the product's configuration for these tests: the
// groups of the issue, plus a larger flavor (to compare prices) and a GPU
// flavor (to check GPULabel and GetAvailableGPUTypes against a template).
const providerConfig = `clusterName: conformance
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

// env is one running simulator + product server + the CA client dialled at it.
type env struct {
	t     *testing.T
	mode  string // "mTLS" or "h2c"
	dir   string
	sim   *harness.Sim
	srv   *harness.Server
	certs *harness.Certs
	ca    caclient.CloudProvider
}

func newEnv(t *testing.T, mtls bool) *env {
	t.Helper()
	bin := harness.Binary(t)
	e := &env{t: t, dir: t.TempDir(), mode: "h2c"}
	e.sim = harness.StartSim(t, bin, "--boot-seconds", "1")
	cfg := harness.WriteFile(t, e.dir, "provider.yaml", providerConfig)
	if mtls {
		e.mode = "mTLS"
		e.certs = harness.GenerateCerts(t, e.dir)
	}
	e.srv = harness.StartServe(t, bin, cfg, e.sim, e.certs)
	cc := harness.CloudConfig(t, e.dir, "cloud-config.yaml", e.srv.Addr, e.certs, "5s")
	e.ca = buildProvider(t, cc)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve output:\n%s", tail(e.srv.Output(), 60))
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

// simServer is the part of the simulator's full server view the tests read.
type simServer struct {
	UUID   string            `json:"uuid"`
	Name   string            `json:"name"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
	Flavor struct {
		Slug string `json:"slug"`
	} `json:"flavor"`
	Zone struct {
		Slug string `json:"slug"`
	} `json:"zone"`
}

func (e *env) simServers(t *testing.T) map[string]simServer {
	t.Helper()
	var st struct {
		Servers []simServer `json:"servers"`
	}
	if err := json.Unmarshal(e.sim.Control(t, "GET", "/_sim/state", nil), &st); err != nil {
		t.Fatalf("simulator state is not JSON: %v", err)
	}
	out := map[string]simServer{}
	for _, s := range st.Servers {
		out[s.UUID] = s
	}
	return out
}

// seed creates a server behind the provider's back and returns its uuid.
func (e *env) seed(t *testing.T, name, zone string, tags map[string]string) string {
	t.Helper()
	body := map[string]any{"name": name, "flavor": "flex-4-1", "image": "debian-13", "zone": zone, "status": "running", "tags": tags}
	if tags == nil {
		body["tags"] = map[string]string{}
	}
	var res struct {
		UUIDs []string `json:"uuids"`
	}
	if err := json.Unmarshal(e.sim.Control(t, "POST", "/_sim/servers", body), &res); err != nil || len(res.UUIDs) != 1 {
		t.Fatalf("seeding server %s: %v %v", name, res, err)
	}
	return res.UUIDs[0]
}

// group returns the node group with this id from CA's NodeGroups().
func (e *env) group(t *testing.T, id string) caclient.NodeGroup {
	t.Helper()
	for _, g := range e.ca.NodeGroups() {
		if g.Id() == id {
			return g
		}
	}
	t.Fatalf("NodeGroups: CA read no group %q; expected the configured group", id)
	return nil
}

func (e *env) targetSize(t *testing.T, g caclient.NodeGroup) int {
	t.Helper()
	n, err := g.TargetSize()
	if err != nil {
		t.Fatalf("NodeGroupTargetSize(%s): CA read error %v; expected a size", g.Id(), err)
	}
	return n
}

func (e *env) expectTarget(t *testing.T, g caclient.NodeGroup, want int, why string) {
	t.Helper()
	if n := e.targetSize(t, g); n != want {
		t.Errorf("NodeGroupTargetSize(%s) %s: CA read %d; expected %d", g.Id(), why, n, want)
	}
}

func (e *env) nodes(t *testing.T, g caclient.NodeGroup) []caclient.Instance {
	t.Helper()
	in, err := g.Nodes()
	if err != nil {
		t.Fatalf("NodeGroupNodes(%s): CA read error %v; expected the instances", g.Id(), err)
	}
	return in
}

// eventually polls cond (which returns done and a description of what it
// saw) until done or timeout; then fails with the last description.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen string
	for {
		var ok bool
		ok, seen = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last read: %s", what, timeout, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// k8sNode is a cluster Node as CA passes it to the provider.
func k8sNode(name, providerID string, labels map[string]string) *apiv1.Node {
	return &apiv1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       apiv1.NodeSpec{ProviderID: providerID},
	}
}

// fakeNode is what CA's clusterstate passes to DeleteNodes for an instance
// that failed to create or never registered: name = providerID = instance id.
func fakeNode(instanceID, reason string) *apiv1.Node {
	return &apiv1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: instanceID, Annotations: map[string]string{"k8s.io/cluster-autoscaler/fake-node-reason": reason}},
		Spec:       apiv1.NodeSpec{ProviderID: instanceID},
	}
}

func describeInstances(in []caclient.Instance) string {
	var b strings.Builder
	b.WriteString("[")
	for i, x := range in {
		if i > 0 {
			b.WriteString(", ")
		}
		state := "status=nil"
		if x.HasStatus {
			state = map[int]string{1: "running", 2: "creating", 3: "deleting"}[x.State]
			if state == "" {
				state = fmt.Sprintf("state=%d", x.State)
			}
		}
		fmt.Fprintf(&b, "%s %s", x.Id, state)
		if x.HasError {
			fmt.Fprintf(&b, " error{class=%d code=%q}", x.ErrorClass, x.ErrorCode)
		}
	}
	b.WriteString("]")
	return b.String()
}

func uuidOf(providerID string) string { return strings.TrimPrefix(providerID, "cloudscale://") }
