package ca

// Conformance of the compiled binary as read through Cluster Autoscaler
// 1.36.1's externalgrpc client (see provider_test.go for which client). Each
// failure names the RPC, what CA read and what it expected.

import (
	"errors"
	"math"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"autoscaler-cloudscale/test/ca/internal/caclient"
)

func TestCA1361OverMTLS(t *testing.T) { runConformance(t, true) }

func TestCA1361OverH2C(t *testing.T) { runConformance(t, false) }

// caDefaults are the NodeGroupDefaults CA sends with NodeGroupGetOptions;
// deliberately not CA's stock values, so an echoed default is recognisable.
var caDefaults = caclient.Options{
	ScaleDownUtilizationThreshold:    0.5,
	ScaleDownGpuUtilizationThreshold: 0.45,
	ScaleDownUnneededTime:            10 * time.Minute,
	ScaleDownUnreadyTime:             21 * time.Minute,
	MaxNodeProvisionTime:             15 * time.Minute,
	ZeroOrMaxNodeScaling:             false,
	IgnoreDaemonSetsUtilization:      true,
}

var serverName = regexp.MustCompile(`^conformance-workers-[a-z0-9]+$`)

func runConformance(t *testing.T, mtls bool) {
	e := newEnv(t, mtls)
	t.Logf("client: %s; transport: %s; provider at %s; simulator at %s", e.ca.Name(), e.mode, e.srv.Addr, e.sim.API)

	var workers, tuned, large, gpu caclient.NodeGroup
	templates := map[string]*apiv1.Node{}
	var ourNodes []*apiv1.Node // k8s nodes for the two workers servers
	var foreignUUID, cpUUID, otherClusterUUID string

	// step runs one stage; must stops the sequence when a stage that later
	// stages build on fails.
	step := func(name string, f func(t *testing.T)) { t.Run(name, f) }
	must := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.Fatalf("stage %s failed; the stages after it depend on it", name)
		}
	}

	must("Refresh", func(t *testing.T) {
		if err := e.ca.Refresh(); err != nil {
			t.Fatalf("Refresh: CA read error %v; expected success (an error aborts CA's loop)", err)
		}
	})

	must("NodeGroups", func(t *testing.T) {
		got := map[string][2]int{}
		for _, g := range e.ca.NodeGroups() {
			got[g.Id()] = [2]int{g.MinSize(), g.MaxSize()}
		}
		want := map[string][2]int{"workers": {0, 10}, "tuned": {1, 3}, "large": {0, 2}, "gpu": {0, 1}}
		if len(got) != len(want) {
			t.Errorf("NodeGroups: CA read %v (id → [min max]); expected %v", got, want)
		}
		for id, mm := range want {
			if got[id] != mm {
				t.Errorf("NodeGroups: CA read group %q min/max %v; expected %v", id, got[id], mm)
			}
		}
		workers, tuned, large, gpu = e.group(t, "workers"), e.group(t, "tuned"), e.group(t, "large"), e.group(t, "gpu")
	})

	step("TargetSizeInitially", func(t *testing.T) {
		for _, g := range []caclient.NodeGroup{workers, large, gpu} {
			e.expectTarget(t, g, 0, "with no servers in the cloud")
		}
		if n := e.targetSize(t, tuned); n != 0 {
			t.Logf("NodeGroupTargetSize(tuned) with no servers: %d (min is 1; CA raises it only with --enforce-node-group-min-size)", n)
		}
	})

	must("TemplateNodeInfo", func(t *testing.T) {
		for _, g := range []caclient.NodeGroup{workers, tuned, large, gpu} {
			n, err := g.TemplateNode()
			if err != nil || n == nil {
				t.Fatalf("NodeGroupTemplateNodeInfo(%s): CA read node=%v err=%v; expected a Node (nil,nil makes CA dereference nil)", g.Id(), n, err)
			}
			templates[g.Id()] = n
		}
		checkTemplate(t, templates["workers"], templateWant{group: "workers", flavor: "flex-8-2", zone: "lpg1", region: "lpg", cpu: 2, memGiB: 8, volumeGiB: 50,
			labels: map[string]string{"team": "blue"}, taints: []apiv1.Taint{{Key: "dedicated", Value: "batch", Effect: apiv1.TaintEffectNoSchedule}}})
		checkTemplate(t, templates["tuned"], templateWant{group: "tuned", flavor: "plus-16-4", zone: "rma1", region: "rma", cpu: 4, memGiB: 16})
		checkTemplate(t, templates["large"], templateWant{group: "large", flavor: "flex-32-8", zone: "lpg1", region: "lpg", cpu: 8, memGiB: 32})
		checkTemplate(t, templates["gpu"], templateWant{group: "gpu", flavor: "gpu2-128-16-1-200", zone: "rma1", region: "rma", cpu: 16, memGiB: 128, gpus: 1})
	})

	step("GPULabelAndTypes", func(t *testing.T) {
		label := e.ca.GPULabel()
		if label == "" {
			t.Fatalf("GPULabel: CA read %q; expected the label that marks GPU nodes (empty means CA cannot tell GPU nodes)", label)
		}
		types := e.ca.GetAvailableGPUTypes()
		if types == nil {
			t.Fatalf("GetAvailableGPUTypes: CA read nil (an RPC error); expected a map")
		}
		gt, ok := templates["gpu"].Labels[label]
		if !ok || gt == "" {
			t.Errorf("NodeGroupTemplateNodeInfo(gpu): CA read labels %v; expected the GPULabel %q on a GPU flavor's template", templates["gpu"].Labels, label)
		} else if _, ok := types[gt]; !ok {
			t.Errorf("GetAvailableGPUTypes: CA read %v; expected it to contain %q, the gpu template's %s label", keys(types), gt, label)
		}
		if v, ok := templates["workers"].Labels[label]; ok {
			t.Errorf("NodeGroupTemplateNodeInfo(workers): CA read GPU label %s=%q; expected none on a flavor without GPUs", label, v)
		}
	})

	step("GetOptionsWithoutOverrides", func(t *testing.T) {
		for _, g := range []caclient.NodeGroup{workers, large} {
			o, err := g.GetOptions(caDefaults)
			if !errors.Is(err, caclient.ErrNotImplemented) {
				t.Errorf("NodeGroupGetOptions(%s), no options configured: CA read options=%+v err=%v; expected UNIMPLEMENTED (ErrNotImplemented, CA keeps its defaults)", g.Id(), o, err)
			}
		}
	})

	step("GetOptionsWithOverrides", func(t *testing.T) {
		o, err := tuned.GetOptions(caDefaults)
		if err != nil || o == nil {
			t.Fatalf("NodeGroupGetOptions(tuned): CA read options=%v err=%v; expected the group's options", o, err)
		}
		want := caDefaults
		want.ScaleDownUtilizationThreshold = 0.3
		want.ScaleDownUnneededTime = 5 * time.Minute
		want.MaxNodeProvisionTime = 20 * time.Minute
		if *o != want {
			t.Errorf("NodeGroupGetOptions(tuned): CA read %+v; expected %+v (overrides, and CA's defaults echoed for the rest: no field silently zero)", *o, want)
		}
	})

	step("PricingNodePrice", func(t *testing.T) {
		now := time.Now().Truncate(time.Second)
		hour := now.Add(time.Hour)
		price := func(n *apiv1.Node, end time.Time) float64 {
			p, err := e.ca.NodePrice(n, now, end)
			if err != nil {
				t.Fatalf("PricingNodePrice(%s): CA read error %v; expected a price (the price expander prices template nodes)", n.Name, err)
			}
			return p
		}
		w, l := price(templates["workers"], hour), price(templates["large"], hour)
		if !(w > 0) {
			t.Errorf("PricingNodePrice(workers template, 1h): CA read %v; expected > 0", w)
		}
		if !(l > w) {
			t.Errorf("PricingNodePrice(large template flex-32-8, 1h): CA read %v; expected more than workers' flex-8-2 (%v)", l, w)
		}
		if w2 := price(templates["workers"], now.Add(2*time.Hour)); math.Abs(w2-2*w) > 1e-9*math.Max(1, w) {
			t.Errorf("PricingNodePrice(workers template, 2h): CA read %v; expected twice the 1h price %v", w2, w)
		}
		if tp := price(templates["tuned"], hour); math.Abs(tp-0.25) > 1e-9 {
			t.Errorf("PricingNodePrice(tuned template, 1h): CA read %v; expected 0.25, the group's configured pricePerHour (CA's price expander prices the template)", tp)
		}
	})

	step("PricingPodPrice", func(t *testing.T) {
		now := time.Now().Truncate(time.Second)
		small, big := pod("small", "500m", "512Mi"), pod("big", "2", "4Gi")
		ps, err := e.ca.PodPrice(small, now, now.Add(time.Hour))
		if err != nil || !(ps > 0) {
			t.Fatalf("PricingPodPrice(500m/512Mi, 1h): CA read price=%v err=%v; expected a price > 0", ps, err)
		}
		pb, err := e.ca.PodPrice(big, now, now.Add(time.Hour))
		if err != nil || !(pb > ps) {
			t.Errorf("PricingPodPrice(2/4Gi, 1h): CA read price=%v err=%v; expected more than the 500m/512Mi pod's %v", pb, err, ps)
		}
	})

	step("IncreaseSizeRefused", func(t *testing.T) {
		for _, d := range []int{0, -1, 11} {
			if err := workers.IncreaseSize(d); err == nil {
				t.Errorf("NodeGroupIncreaseSize(workers, delta=%d) at target 0, max 10: CA read success; expected an error", d)
			}
		}
		e.expectTarget(t, workers, 0, "after refused increases")
		if n := len(e.simServers(t)); n != 0 {
			t.Errorf("NodeGroupIncreaseSize refused: the cloud has %d servers; expected none created", n)
		}
	})

	must("IncreaseSize", func(t *testing.T) {
		start := time.Now()
		if err := workers.IncreaseSize(2); err != nil {
			t.Fatalf("NodeGroupIncreaseSize(workers, 2): CA read error %v; expected success", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("NodeGroupIncreaseSize(workers, 2): answered after %s; expected well under CA's 5s deadline", d)
		}
		e.expectTarget(t, workers, 2, "right after IncreaseSize(2)")
	})

	must("NodesRunning", func(t *testing.T) {
		var inst []caclient.Instance
		eventually(t, 30*time.Second, "NodeGroupNodes(workers): two running instances", func() (bool, string) {
			if err := e.ca.Refresh(); err != nil {
				return false, "Refresh: " + err.Error()
			}
			inst = e.nodes(t, workers)
			running := 0
			for _, i := range inst {
				if i.HasStatus && i.State == caclient.InstanceRunning && !i.HasError {
					running++
				}
			}
			return running == 2 && len(inst) == 2, describeInstances(inst)
		})
		servers := e.simServers(t)
		for _, i := range inst {
			if !strings.HasPrefix(i.Id, "cloudscale://") {
				t.Errorf("NodeGroupNodes(workers): CA read instance id %q; expected cloudscale://<uuid> (it must equal the node's spec.providerID)", i.Id)
				continue
			}
			s, ok := servers[uuidOf(i.Id)]
			if !ok {
				t.Errorf("NodeGroupNodes(workers): CA read %q; expected the uuid of a server in the cloud", i.Id)
				continue
			}
			if !serverName.MatchString(s.Name) {
				t.Errorf("server %s: name %q; expected <cluster>-<group>-<random>", s.UUID, s.Name)
			}
			if s.Tags[clusterTag] != clusterName || s.Tags[groupTag] != "workers" {
				t.Errorf("server %s: tags %v; expected %s=%s and %s=workers", s.Name, s.Tags, clusterTag, clusterName, groupTag)
			}
			if s.Flavor.Slug != "flex-8-2" || s.Zone.Slug != "lpg1" {
				t.Errorf("server %s: flavor %s zone %s; expected flex-8-2 in lpg1", s.Name, s.Flavor.Slug, s.Zone.Slug)
			}
			ourNodes = append(ourNodes, k8sNode(s.Name, i.Id, map[string]string{groupLabel: "workers", "team": "blue"}))
		}
		if len(ourNodes) != 2 {
			t.Fatalf("NodeGroupNodes(workers): CA read %s; expected two servers of ours", describeInstances(inst))
		}
		e.expectTarget(t, workers, 2, "with two running servers")
	})

	step("NodeGroupForNode", func(t *testing.T) {
		cpUUID = e.seed(t, "conformance-cp-1", "lpg1", map[string]string{"role": "control-plane"})
		foreignUUID = e.seed(t, "someone-else-1", "lpg1", nil)
		otherClusterUUID = e.seed(t, "other-workers-abc12", "lpg1", map[string]string{clusterTag: "other", groupTag: "workers"})
		if err := e.ca.Refresh(); err != nil {
			t.Fatalf("Refresh: CA read error %v; expected success", err)
		}
		expectGroup := func(desc string, n *apiv1.Node, want string) {
			t.Helper()
			g, err := e.ca.NodeGroupForNode(n)
			got := ""
			if g != nil {
				got = g.Id()
			}
			if err != nil || got != want {
				wantS := "group " + want
				if want == "" {
					wantS = "nil group and no error (an error here breaks CA's loop for every unmanaged node)"
				}
				t.Errorf("NodeGroupForNode(%s: name=%q providerID=%q): CA read group=%q err=%v; expected %s", desc, n.Name, n.Spec.ProviderID, got, err, wantS)
			}
			if g != nil && want != "" && (g.MinSize() != 0 || g.MaxSize() != 10) {
				t.Errorf("NodeGroupForNode(%s): CA read min/max %d/%d; expected 0/10", desc, g.MinSize(), g.MaxSize())
			}
		}
		for _, n := range ourNodes {
			expectGroup("our node by providerID", n, "workers")
			expectGroup("our node by name only", k8sNode(n.Name, "", nil), "workers")
		}
		expectGroup("control plane", k8sNode("conformance-cp-1", "cloudscale://"+cpUUID, map[string]string{"node-role.kubernetes.io/control-plane": ""}), "")
		expectGroup("control plane by name only", k8sNode("conformance-cp-1", "", map[string]string{"node-role.kubernetes.io/control-plane": ""}), "")
		expectGroup("foreign server", k8sNode("someone-else-1", "cloudscale://"+foreignUUID, nil), "")
		expectGroup("other cluster's workers", k8sNode("other-workers-abc12", "cloudscale://"+otherClusterUUID, nil), "")
		expectGroup("unknown uuid", k8sNode("ghost", "cloudscale://00000000-0000-4000-8000-000000000000", nil), "")
		expectGroup("other cloud's providerID", k8sNode("kind-worker", "kind://docker/kind/kind-worker", nil), "")
		expectGroup("our name under a foreign providerID", k8sNode(ourNodes[0].Name, "cloudscale://"+foreignUUID, nil), "")
	})

	step("RefreshSurvivesTransientAPIError", func(t *testing.T) {
		e.sim.Control(t, "POST", "/_sim/faults", map[string]any{"addRules": []map[string]any{{
			"method": "GET", "path": "/v1/servers", "action": "error", "status": 503, "count": 5,
		}}})
		defer e.sim.Control(t, "POST", "/_sim/reset-faults", nil)
		if err := e.ca.Refresh(); err != nil {
			t.Errorf("Refresh while the cloud API answers 503 once (view fresh): CA read error %v; expected success (an error aborts CA's whole loop)", err)
		}
		e.expectTarget(t, workers, 2, "during a transient API error")
	})

	step("DeleteNodesForeignRefused", func(t *testing.T) {
		before := e.simServers(t)
		cases := []struct {
			desc  string
			nodes []*apiv1.Node
		}{
			{"a foreign server", []*apiv1.Node{k8sNode("someone-else-1", "cloudscale://"+foreignUUID, nil)}},
			{"the control plane", []*apiv1.Node{k8sNode("conformance-cp-1", "cloudscale://"+cpUUID, nil)}},
			{"another cluster's server", []*apiv1.Node{k8sNode("other-workers-abc12", "cloudscale://"+otherClusterUUID, nil)}},
			{"ours plus a foreign one", []*apiv1.Node{ourNodes[0], k8sNode("someone-else-1", "cloudscale://"+foreignUUID, nil)}},
			{"a foreign server by name only", []*apiv1.Node{k8sNode("someone-else-1", "", nil)}},
		}
		for _, c := range cases {
			if err := workers.DeleteNodes(c.nodes); err == nil {
				t.Errorf("NodeGroupDeleteNodes(workers, %s): CA read success; expected an error and nothing deleted", c.desc)
			}
		}
		after := e.simServers(t)
		for uuid, s := range before {
			a, ok := after[uuid]
			if !ok {
				t.Errorf("NodeGroupDeleteNodes refused: server %s (%s) was deleted; expected nothing deleted", s.Name, uuid)
			} else if a.Status != s.Status && a.Status != "running" {
				t.Errorf("NodeGroupDeleteNodes refused: server %s went from %s to %s; expected untouched", s.Name, s.Status, a.Status)
			}
		}
		e.expectTarget(t, workers, 2, "after refused deletions")
	})

	step("DeleteNodesOtherGroupRefused", func(t *testing.T) {
		if err := large.DeleteNodes([]*apiv1.Node{ourNodes[0]}); err == nil {
			t.Errorf("NodeGroupDeleteNodes(large, a workers node): CA read success; expected an error (the node is not in this group)")
		}
		if _, ok := e.simServers(t)[uuidOf(ourNodes[0].Spec.ProviderID)]; !ok {
			t.Errorf("NodeGroupDeleteNodes(large, a workers node) deleted it; expected nothing deleted")
		}
	})

	step("DeleteNodesBelowMinRefused", func(t *testing.T) {
		if err := tuned.IncreaseSize(1); err != nil {
			t.Fatalf("NodeGroupIncreaseSize(tuned, 1): CA read error %v; expected success", err)
		}
		var id string
		eventually(t, 30*time.Second, "NodeGroupNodes(tuned): one running instance", func() (bool, string) {
			_ = e.ca.Refresh()
			inst := e.nodes(t, tuned)
			if len(inst) == 1 && inst[0].HasStatus && inst[0].State == caclient.InstanceRunning {
				id = inst[0].Id
				return true, ""
			}
			return false, describeInstances(inst)
		})
		s := e.simServers(t)[uuidOf(id)]
		if err := tuned.DeleteNodes([]*apiv1.Node{k8sNode(s.Name, id, nil)}); err == nil {
			t.Errorf("NodeGroupDeleteNodes(tuned, its only node) with min 1: CA read success; expected an error (below min size)")
		}
		if _, ok := e.simServers(t)[uuidOf(id)]; !ok {
			t.Errorf("NodeGroupDeleteNodes(tuned) below min: the server was deleted; expected it kept")
		}
		e.expectTarget(t, tuned, 1, "after a refused delete below min")
		// CA prices running nodes of a group too: the configured price applies.
		now := time.Now().Truncate(time.Second)
		if p, err := e.ca.NodePrice(k8sNode(s.Name, id, nil), now, now.Add(time.Hour)); err != nil || math.Abs(p-0.25) > 1e-9 {
			t.Errorf("PricingNodePrice(tuned node %s, 1h): CA read price=%v err=%v; expected 0.25 (pricePerHour)", s.Name, p, err)
		}
	})

	step("DecreaseTargetSizeRefused", func(t *testing.T) {
		for _, d := range []int{-1, 0, 1} {
			if err := workers.DecreaseTargetSize(d); err == nil {
				t.Errorf("NodeGroupDecreaseTargetSize(workers, %d) with no pending creations: CA read success; expected an error (existing servers are not removed this way)", d)
			}
		}
		e.expectTarget(t, workers, 2, "after refused decreases")
		for _, n := range ourNodes {
			if s, ok := e.simServers(t)[uuidOf(n.Spec.ProviderID)]; !ok || s.Status != "running" {
				t.Errorf("NodeGroupDecreaseTargetSize refused: server %s is %v; expected it running", n.Name, s.Status)
			}
		}
	})

	// Quota exhausted: the accepted creation fails in the background; CA sees
	// a creating instance with OutOfResources, and deletes it with a fake node.
	failedInstance := func(t *testing.T, wantClass int) caclient.Instance {
		t.Helper()
		var failed caclient.Instance
		eventually(t, 30*time.Second, "NodeGroupNodes(workers): a creating instance with error info", func() (bool, string) {
			inst := e.nodes(t, workers)
			for _, i := range inst {
				if i.HasError {
					failed = i
					return true, ""
				}
			}
			return false, describeInstances(inst)
		})
		if !failed.HasStatus || failed.State != caclient.InstanceCreating {
			t.Errorf("NodeGroupNodes(workers): CA read failed instance %s; expected state creating (CA only acts on errors of creating instances)", describeInstances([]caclient.Instance{failed}))
		}
		if failed.ErrorClass != wantClass || failed.ErrorCode == "" {
			t.Errorf("NodeGroupNodes(workers): CA read error class %d code %q; expected class %d with a code", failed.ErrorClass, failed.ErrorCode, wantClass)
		}
		return failed
	}

	step("NodesFailedCreateOutOfResources", func(t *testing.T) {
		e.sim.Control(t, "POST", "/_sim/quota", map[string]any{"servers": len(e.simServers(t))})
		defer e.sim.Control(t, "POST", "/_sim/quota", map[string]any{"servers": nil})
		if err := workers.IncreaseSize(1); err != nil {
			t.Fatalf("NodeGroupIncreaseSize(workers, 1) with quota exhausted: CA read error %v; expected the request accepted (the failure is reported through NodeGroupNodes)", err)
		}
		failed := failedInstance(t, caclient.OutOfResourcesErrorClass)
		e.expectTarget(t, workers, 3, "with a failed creation not yet cleared")
		if err := workers.DeleteNodes([]*apiv1.Node{fakeNode(failed.Id, "create-error")}); err != nil {
			t.Fatalf("NodeGroupDeleteNodes(workers, fake node %q) as CA sends for a create error: CA read error %v; expected success", failed.Id, err)
		}
		e.expectTarget(t, workers, 2, "after CA deleted the failed instance")
		for _, i := range e.nodes(t, workers) {
			if i.Id == failed.Id {
				t.Errorf("NodeGroupNodes(workers) after deleting %s: CA still reads it; expected it gone", failed.Id)
			}
		}
	})

	step("DecreaseTargetSizeCancelsFailedCreate", func(t *testing.T) {
		e.sim.Control(t, "POST", "/_sim/quota", map[string]any{"servers": len(e.simServers(t))})
		defer e.sim.Control(t, "POST", "/_sim/quota", map[string]any{"servers": nil})
		if err := workers.IncreaseSize(1); err != nil {
			t.Fatalf("NodeGroupIncreaseSize(workers, 1): CA read error %v; expected success", err)
		}
		failedInstance(t, caclient.OutOfResourcesErrorClass)
		if err := workers.DecreaseTargetSize(-1); err != nil {
			t.Fatalf("NodeGroupDecreaseTargetSize(workers, -1) with one failed creation: CA read error %v; expected success", err)
		}
		e.expectTarget(t, workers, 2, "after DecreaseTargetSize(-1) cancelled the failed creation")
		if n := len(e.nodes(t, workers)); n != 2 {
			t.Errorf("NodeGroupNodes(workers) after the decrease: CA read %d instances; expected the 2 running", n)
		}
	})

	step("NodesFailedCreateOther", func(t *testing.T) {
		e.sim.Control(t, "POST", "/_sim/faults", map[string]any{"addRules": []map[string]any{{
			"method": "POST", "path": "/v1/servers", "action": "error", "status": 400, "count": 1,
			"body": map[string]string{"image": "conformance: injected rejection"},
		}}})
		defer e.sim.Control(t, "POST", "/_sim/reset-faults", nil)
		if err := workers.IncreaseSize(1); err != nil {
			t.Fatalf("NodeGroupIncreaseSize(workers, 1): CA read error %v; expected success", err)
		}
		failed := failedInstance(t, caclient.OtherErrorClass)
		if err := workers.DeleteNodes([]*apiv1.Node{fakeNode(failed.Id, "create-error")}); err != nil {
			t.Fatalf("NodeGroupDeleteNodes(workers, fake node %q): CA read error %v; expected success", failed.Id, err)
		}
		e.expectTarget(t, workers, 2, "after CA deleted the failed instance")
	})

	step("DeleteNodes", func(t *testing.T) {
		victim := ourNodes[0]
		if err := workers.DeleteNodes([]*apiv1.Node{victim}); err != nil {
			t.Fatalf("NodeGroupDeleteNodes(workers, %s): CA read error %v; expected success", victim.Name, err)
		}
		e.expectTarget(t, workers, 1, "right after deleting one of two")
		eventually(t, 30*time.Second, "the deleted server leaves the cloud and NodeGroupNodes", func() (bool, string) {
			_ = e.ca.Refresh()
			inst := e.nodes(t, workers)
			_, inCloud := e.simServers(t)[uuidOf(victim.Spec.ProviderID)]
			for _, i := range inst {
				if i.Id == victim.Spec.ProviderID && !(i.HasStatus && i.State == caclient.InstanceDeleting) {
					return false, describeInstances(inst)
				}
			}
			return !inCloud, describeInstances(inst)
		})
		e.expectTarget(t, workers, 1, "after the deletion settled")
		// The other node and the foreign servers are untouched.
		servers := e.simServers(t)
		for _, u := range []string{uuidOf(ourNodes[1].Spec.ProviderID), foreignUUID, cpUUID, otherClusterUUID} {
			if _, ok := servers[u]; !ok {
				t.Errorf("NodeGroupDeleteNodes(workers, %s) also deleted server %s; expected only the named node deleted", victim.Name, u)
			}
		}
		// A node that is already gone counts as deleted.
		if err := workers.DeleteNodes([]*apiv1.Node{victim}); err != nil {
			t.Errorf("NodeGroupDeleteNodes(workers, already deleted %s): CA read error %v; expected success (already gone counts as deleted)", victim.Name, err)
		}
		e.expectTarget(t, workers, 1, "after deleting an already deleted node")
	})

	step("Cleanup", func(t *testing.T) {
		if err := e.ca.Cleanup(); err != nil {
			t.Errorf("Cleanup: CA read error %v; expected success", err)
		}
	})
}

type templateWant struct {
	group, flavor, zone, region string
	cpu, memGiB, volumeGiB      int64
	gpus                        int64
	labels                      map[string]string
	taints                      []apiv1.Taint
}

// checkTemplate asserts on a template as CA holds it after sanitising.
func checkTemplate(t *testing.T, n *apiv1.Node, w templateWant) {
	t.Helper()
	rpc := "NodeGroupTemplateNodeInfo(" + w.group + ")"
	labels := map[string]string{
		"kubernetes.io/os":                               "linux",
		"kubernetes.io/arch":                             "amd64",
		"node.kubernetes.io/instance-type":               w.flavor,
		"topology.kubernetes.io/region":                  w.region,
		"topology.kubernetes.io/zone":                    w.zone,
		groupLabel:                                       w.group,
		"beta.kubernetes.io/instance-type":               w.flavor, // CA's UpdateDeprecatedLabels copies
		"failure-domain.beta.kubernetes.io/region":       w.region,
		"failure-domain.beta.kubernetes.io/zone":         w.zone,
		"cluster-autoscaler.kubernetes.io/template-node": "true",
	}
	for k, v := range w.labels {
		labels[k] = v
	}
	for k, v := range labels {
		if got, ok := n.Labels[k]; !ok || got != v {
			t.Errorf("%s: CA read label %s=%q (present=%v); expected %q", rpc, k, got, ok, v)
		}
	}
	if !strings.HasPrefix(n.Name, "template-node-for-"+w.group+"-") || n.Labels["kubernetes.io/hostname"] != n.Name {
		t.Errorf("%s: after CA's sanitising the node is %q with hostname %q; expected template-node-for-%s-<n> for both", rpc, n.Name, n.Labels["kubernetes.io/hostname"], w.group)
	}
	if !sameTaints(n.Spec.Taints, w.taints) {
		t.Errorf("%s: CA read taints %v after sanitising; expected %v", rpc, n.Spec.Taints, w.taints)
	}
	if n.Spec.Unschedulable {
		t.Errorf("%s: CA read spec.unschedulable=true; expected a schedulable template", rpc)
	}
	c, a := n.Status.Capacity, n.Status.Allocatable
	qty := func(list apiv1.ResourceList, name apiv1.ResourceName) resource.Quantity { return list[name] }
	if cpu := qty(c, apiv1.ResourceCPU); cpu.MilliValue() != w.cpu*1000 {
		t.Errorf("%s: CA read capacity cpu %s; expected %d (the flavor's vCPUs)", rpc, cpu.String(), w.cpu)
	}
	mem := qty(c, apiv1.ResourceMemory)
	if gib := float64(mem.Value()) / (1 << 30); gib > float64(w.memGiB) || gib < 0.9*float64(w.memGiB) {
		t.Errorf("%s: CA read capacity memory %s (%.2f GiB); expected the flavor's %d GiB (less at most 10%% kernel overhead)", rpc, mem.String(), gib, w.memGiB)
	}
	if pods := qty(c, apiv1.ResourcePods); pods.Value() <= 0 {
		t.Errorf("%s: CA read capacity pods %s; expected > 0 (CA schedules no pod on a node with 0 pods)", rpc, pods.String())
	}
	if es := qty(c, apiv1.ResourceEphemeralStorage); es.Value() <= 0 || (w.volumeGiB > 0 && es.Value() > w.volumeGiB<<30) {
		t.Errorf("%s: CA read capacity ephemeral-storage %s; expected > 0 and at most the %d GiB volume", rpc, es.String(), w.volumeGiB)
	}
	for _, r := range []apiv1.ResourceName{apiv1.ResourceCPU, apiv1.ResourceMemory} {
		cq, aq := qty(c, r), qty(a, r)
		if aq.Cmp(cq) >= 0 || aq.Sign() <= 0 {
			t.Errorf("%s: CA read %s allocatable %s, capacity %s; expected 0 < allocatable < capacity", rpc, r, aq.String(), cq.String())
		}
	}
	for _, r := range []apiv1.ResourceName{apiv1.ResourcePods, apiv1.ResourceEphemeralStorage} {
		cq, aq := qty(c, r), qty(a, r)
		if aq.Cmp(cq) > 0 || aq.Sign() <= 0 {
			t.Errorf("%s: CA read %s allocatable %s, capacity %s; expected 0 < allocatable <= capacity", rpc, r, aq.String(), cq.String())
		}
	}
	gpuC, gpuA := qty(c, "nvidia.com/gpu"), qty(a, "nvidia.com/gpu")
	if gpuC.Value() != w.gpus || gpuA.Value() != w.gpus {
		t.Errorf("%s: CA read nvidia.com/gpu capacity %s allocatable %s; expected %d", rpc, gpuC.String(), gpuA.String(), w.gpus)
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == apiv1.NodeReady && cond.Status == apiv1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		t.Errorf("%s: CA read conditions %v; expected Ready=True", rpc, n.Status.Conditions)
	}
}

func sameTaints(got, want []apiv1.Taint) bool {
	if len(got) != len(want) {
		return false
	}
	key := func(t apiv1.Taint) string { return t.Key + "=" + t.Value + ":" + string(t.Effect) }
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	sort.Strings(g)
	sort.Strings(w)
	return strings.Join(g, ",") == strings.Join(w, ",")
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func pod(name, cpu, mem string) *apiv1.Pod {
	return &apiv1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: apiv1.PodSpec{Containers: []apiv1.Container{{
			Name:  "app",
			Image: "registry.example/app:1",
			Resources: apiv1.ResourceRequirements{Requests: apiv1.ResourceList{
				apiv1.ResourceCPU:    resource.MustParse(cpu),
				apiv1.ResourceMemory: resource.MustParse(mem),
			}},
		}}},
	}
}
