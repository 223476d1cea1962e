package conformance

// The sequence drives the compiled binary through CA's own provider object
// (cloudprovider.CloudProvider from BuildExternalGrpc) and CA's own helpers
// (template sanitising, GPU config, fake nodes, flag defaults). Each failure
// names the call, what CA read and what it expected.

import (
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	"k8s.io/autoscaler/cluster-autoscaler/clusterstate"
	"k8s.io/autoscaler/cluster-autoscaler/config"
	"k8s.io/autoscaler/cluster-autoscaler/config/flags"
	"k8s.io/autoscaler/cluster-autoscaler/simulator"
	"k8s.io/autoscaler/cluster-autoscaler/utils/taints"

	"autoscaler-cloudscale/test/ca/harness"
)

const (
	clusterName = "conformance"
	clusterTag  = "autoscaler-cloudscale-cluster"
	groupTag    = "autoscaler-cloudscale-group"
	// groupLabel is the node label the product puts on a group's nodes.
	groupLabel = "autoscaler-cloudscale/node-group"
)

var serverName = regexp.MustCompile(`^conformance-workers-[a-z0-9]+$`)

// Run is the whole sequence against one server, over mutual TLS or h2c.
// Stages run in order on one cloud; a stage later ones build on stops the run.
func Run(t *testing.T, r Release, mtls bool) {
	e := Start(t, r, mtls)
	ca := e.CA
	t.Logf("CA %s externalgrpc (%s) over %s; provider at %s; simulator at %s", r.Version, ca.Name(), e.Mode, e.Srv.Addr, e.Sim.API)

	// What CA's main would run with when given no flags.
	caOptions := flags.AutoscalingOptions()

	var workers, tuned, large, gpuGroup cloudprovider.NodeGroup
	templates := map[string]*apiv1.Node{}
	var ourNodes []*apiv1.Node // cluster nodes for the two workers servers
	var foreignUUID, cpUUID, otherClusterUUID string

	step := func(name string, f func(t *testing.T)) { t.Run(name, f) }
	must := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.Fatalf("stage %s failed; the stages after it depend on it", name)
		}
	}

	must("Refresh", func(t *testing.T) {
		if err := ca.Refresh(); err != nil {
			t.Fatalf("Refresh: CA read error %v; expected success (an error aborts CA's loop)", err)
		}
	})

	must("NodeGroups", func(t *testing.T) {
		got := map[string][2]int{}
		for _, g := range ca.NodeGroups() {
			got[g.Id()] = [2]int{g.MinSize(), g.MaxSize()}
			if !g.Exist() || g.Autoprovisioned() {
				t.Errorf("NodeGroups: CA read group %q exist=%v autoprovisioned=%v; expected an existing, configured group", g.Id(), g.Exist(), g.Autoprovisioned())
			}
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
		workers, tuned, large, gpuGroup = group(t, ca, "workers"), group(t, ca, "tuned"), group(t, ca, "large"), group(t, ca, "gpu")
	})

	step("TargetSizeInitially", func(t *testing.T) {
		for _, g := range []cloudprovider.NodeGroup{workers, large, gpuGroup} {
			expectTarget(t, g, 0, "with no servers in the cloud")
		}
		if n := targetSize(t, tuned); n != 0 {
			t.Logf("NodeGroupTargetSize(tuned) with no servers: %d (min is 1; CA raises it only with --enforce-node-group-min-size)", n)
		}
	})

	must("TemplateNodeInfo", func(t *testing.T) {
		taintConfig := taints.NewTaintConfig(caOptions)
		for _, g := range []cloudprovider.NodeGroup{workers, tuned, large, gpuGroup} {
			// CA's client caches this answer on the group, so the sanitising
			// below reads the same one; checked first because (nil, nil)
			// makes CA's sanitising dereference nil.
			if raw, err := g.TemplateNodeInfo(); err != nil || raw == nil || raw.Node() == nil {
				t.Fatalf("NodeGroupTemplateNodeInfo(%s): CA read %v err=%v; expected a node", g.Id(), raw, err)
			}
			ni, err := simulator.SanitizedTemplateNodeInfoFromNodeGroup(g, daemonSets, taintConfig)
			if err != nil || ni == nil || ni.Node() == nil {
				t.Fatalf("NodeGroupTemplateNodeInfo(%s) through simulator.SanitizedTemplateNodeInfoFromNodeGroup: CA read %v err=%v; expected a template node", g.Id(), ni, err)
			}
			templates[g.Id()] = ni.Node()
			checkDaemonSetPods(t, g.Id(), ni.Pods())
		}
		checkTemplate(t, templates["workers"], templateWant{group: "workers", flavor: "flex-8-2", zone: "lpg1", region: "lpg", cpu: 2, memGiB: 8, volumeGiB: 50,
			labels: map[string]string{"team": "blue"}, taints: []apiv1.Taint{{Key: "dedicated", Value: "batch", Effect: apiv1.TaintEffectNoSchedule}}})
		checkTemplate(t, templates["tuned"], templateWant{group: "tuned", flavor: "plus-16-4", zone: "rma1", region: "rma", cpu: 4, memGiB: 16})
		checkTemplate(t, templates["large"], templateWant{group: "large", flavor: "flex-32-8", zone: "lpg1", region: "lpg", cpu: 8, memGiB: 32})
		checkTemplate(t, templates["gpu"], templateWant{group: "gpu", flavor: "gpu2-128-16-1-200", zone: "rma1", region: "rma", cpu: 16, memGiB: 128, gpus: 1})
	})

	step("GPU", func(t *testing.T) {
		label := ca.GPULabel()
		if label == "" {
			t.Fatalf("GPULabel: CA read %q; expected the label that marks GPU nodes (empty means CA cannot tell GPU nodes)", label)
		}
		types := ca.GetAvailableGPUTypes()
		if types == nil {
			t.Fatalf("GetAvailableGPUTypes: CA read nil (an RPC error); expected a map")
		}
		cfg := ca.GetNodeGpuConfig(templates["gpu"])
		if cfg == nil {
			t.Fatalf("GetNodeGpuConfig(gpu template): CA read nil; expected a GPU config (template labels %v)", templates["gpu"].Labels)
		}
		// (The resource name in it is nvidia.com/gpu whatever the node
		// carries; the template's GPU resources are checked above.)
		if cfg.Label != label || cfg.Type == "" {
			t.Errorf("GetNodeGpuConfig(gpu template): CA read %+v; expected label %q and a type", *cfg, label)
		}
		if _, ok := types[cfg.Type]; !ok {
			t.Errorf("GetAvailableGPUTypes: CA read %v; expected it to contain %q, the gpu template's type", types, cfg.Type)
		}
		for _, id := range []string{"workers", "tuned", "large"} {
			if c := ca.GetNodeGpuConfig(templates[id]); c != nil {
				t.Errorf("GetNodeGpuConfig(%s template): CA read %+v; expected nil for a flavor without GPUs", id, *c)
			}
		}
	})

	step("GetOptions", func(t *testing.T) {
		for _, g := range []cloudprovider.NodeGroup{workers, large, gpuGroup} {
			o, err := g.GetOptions(caOptions.NodeGroupDefaults)
			if !errors.Is(err, cloudprovider.ErrNotImplemented) {
				t.Errorf("NodeGroupGetOptions(%s), no options configured: CA read options=%+v err=%v; expected ErrNotImplemented (CA keeps its defaults)", g.Id(), o, err)
			}
		}
		// CA's stock defaults, then every carried field changed, so that an
		// echoed default is told apart from a constant.
		other := caOptions.NodeGroupDefaults
		other.ScaleDownUtilizationThreshold, other.ScaleDownGpuUtilizationThreshold = 0.55, 0.45
		other.ScaleDownUnneededTime, other.ScaleDownUnreadyTime, other.MaxNodeProvisionTime = 11*time.Minute, 21*time.Minute, 16*time.Minute
		other.ZeroOrMaxNodeScaling, other.IgnoreDaemonSetsUtilization = !other.ZeroOrMaxNodeScaling, !other.IgnoreDaemonSetsUtilization
		for name, defaults := range map[string]config.NodeGroupAutoscalingOptions{"CA's defaults": caOptions.NodeGroupDefaults, "changed defaults": other} {
			o, err := tuned.GetOptions(defaults)
			if err != nil || o == nil {
				t.Fatalf("NodeGroupGetOptions(tuned) with %s: CA read options=%v err=%v; expected the group's options", name, o, err)
			}
			want := carried(defaults)
			want.ScaleDownUtilizationThreshold, want.ScaleDownUnneededTime, want.MaxNodeProvisionTime = 0.3, 5*time.Minute, 20*time.Minute
			if got := carried(*o); got != want {
				t.Errorf("NodeGroupGetOptions(tuned) with %s %+v: CA read %+v; expected %+v (the overrides, and the defaults echoed for the rest: no field silently zero)", name, carried(defaults), got, want)
			}
		}
	})

	step("Pricing", func(t *testing.T) {
		pm, aerr := ca.Pricing()
		if aerr != nil || pm == nil {
			t.Fatalf("Pricing: CA read model=%v err=%v; expected a pricing model", pm, aerr)
		}
		now := time.Now().Truncate(time.Second)
		hour := now.Add(time.Hour)
		price := func(n *apiv1.Node, end time.Time) float64 {
			t.Helper()
			p, err := pm.NodePrice(n, now, end)
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
			t.Errorf("PricingNodePrice(tuned template, 1h): CA read %v; expected 0.25, the group's configured pricePerHour", tp)
		}
		small, err := pm.PodPrice(pod("small", "500m", "512Mi"), now, hour)
		if err != nil || !(small > 0) {
			t.Fatalf("PricingPodPrice(500m/512Mi, 1h): CA read price=%v err=%v; expected a price > 0", small, err)
		}
		big, err := pm.PodPrice(pod("big", "2", "4Gi"), now, hour)
		if err != nil || !(big > small) {
			t.Errorf("PricingPodPrice(2/4Gi, 1h): CA read price=%v err=%v; expected more than the 500m/512Mi pod's %v", big, err, small)
		}
		if !(small < w) {
			t.Errorf("PricingPodPrice(500m/512Mi, 1h): CA read %v; expected less than a whole flex-8-2 node (%v)", small, w)
		}
	})

	step("IncreaseSizeRefused", func(t *testing.T) {
		for _, d := range []int{0, -1, 11} {
			if err := workers.IncreaseSize(d); err == nil {
				t.Errorf("NodeGroupIncreaseSize(workers, delta=%d) at target 0, max 10: CA read success; expected an error", d)
			}
		}
		expectTarget(t, workers, 0, "after refused increases")
		if n := len(e.Sim.Servers(t)); n != 0 {
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
		expectTarget(t, workers, 2, "right after IncreaseSize(2)")
	})

	must("NodesRunning", func(t *testing.T) {
		var inst []cloudprovider.Instance
		eventually(t, 30*time.Second, "NodeGroupNodes(workers): two running instances", func() (bool, string) {
			if err := ca.Refresh(); err != nil {
				return false, "Refresh: " + err.Error()
			}
			inst = nodes(t, workers)
			running := 0
			for _, i := range inst {
				if i.Status != nil && i.Status.State == cloudprovider.InstanceRunning && i.Status.ErrorInfo == nil {
					running++
				}
			}
			return running == 2 && len(inst) == 2, describe(inst)
		})
		servers := e.Sim.Servers(t)
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
			t.Fatalf("NodeGroupNodes(workers): CA read %s; expected two servers of ours", describe(inst))
		}
		expectTarget(t, workers, 2, "with two running servers")
	})

	step("NodeGroupForNode", func(t *testing.T) {
		cpUUID = e.Sim.Seed(t, "conformance-cp-1", "lpg1", map[string]string{"role": "control-plane"})
		foreignUUID = e.Sim.Seed(t, "someone-else-1", "lpg1", nil)
		otherClusterUUID = e.Sim.Seed(t, "other-workers-abc12", "lpg1", map[string]string{clusterTag: "other", groupTag: "workers"})
		if err := ca.Refresh(); err != nil {
			t.Fatalf("Refresh: CA read error %v; expected success", err)
		}
		expectGroup := func(desc string, n *apiv1.Node, want string) {
			t.Helper()
			g, err := ca.NodeGroupForNode(n)
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

	step("HasInstance", func(t *testing.T) {
		// CA's externalgrpc client answers this itself (no RPC exists); its
		// core then falls back to the node's ToBeDeleted taint. Pinned here so
		// that a release that starts asking the provider shows up.
		for _, n := range []*apiv1.Node{ourNodes[0], k8sNode("someone-else-1", "cloudscale://"+foreignUUID, nil)} {
			if ok, err := ca.HasInstance(n); !ok || !errors.Is(err, cloudprovider.ErrNotImplemented) {
				t.Errorf("HasInstance(%s): CA read %v, %v; expected true, ErrNotImplemented (answered by CA's client without an RPC)", n.Name, ok, err)
			}
		}
	})

	step("RefreshSurvivesTransientAPIError", func(t *testing.T) {
		e.Sim.Control(t, "POST", "/_sim/faults", map[string]any{"addRules": []map[string]any{{
			"method": "GET", "path": "/v1/servers", "action": "error", "status": 503, "count": 5,
		}}})
		defer e.Sim.Control(t, "POST", "/_sim/reset-faults", nil)
		if err := ca.Refresh(); err != nil {
			t.Errorf("Refresh while the cloud API answers 503 (view fresh): CA read error %v; expected success (an error aborts CA's whole loop)", err)
		}
		expectTarget(t, workers, 2, "during a transient API error")
	})

	step("DeleteNodesRefused", func(t *testing.T) {
		before := e.Sim.Servers(t)
		foreign := k8sNode("someone-else-1", "cloudscale://"+foreignUUID, nil)
		cases := []struct {
			desc  string
			group cloudprovider.NodeGroup
			nodes []*apiv1.Node
		}{
			{"a foreign server", workers, []*apiv1.Node{foreign}},
			{"the control plane", workers, []*apiv1.Node{k8sNode("conformance-cp-1", "cloudscale://"+cpUUID, nil)}},
			{"another cluster's server", workers, []*apiv1.Node{k8sNode("other-workers-abc12", "cloudscale://"+otherClusterUUID, nil)}},
			{"ours plus a foreign one", workers, []*apiv1.Node{ourNodes[0], foreign}},
			{"a foreign server by name only", workers, []*apiv1.Node{k8sNode("someone-else-1", "", nil)}},
			{"a workers node, asked of group large", large, []*apiv1.Node{ourNodes[0]}},
		}
		for _, c := range cases {
			if err := c.group.DeleteNodes(c.nodes); err == nil {
				t.Errorf("NodeGroupDeleteNodes(%s, %s): CA read success; expected an error and nothing deleted", c.group.Id(), c.desc)
			}
		}
		// CA's client refuses ForceDeleteNodes itself (no RPC); its core then
		// uses DeleteNodes. Nothing may be deleted on the way.
		if err := workers.ForceDeleteNodes([]*apiv1.Node{ourNodes[0]}); !errors.Is(err, cloudprovider.ErrNotImplemented) {
			t.Errorf("ForceDeleteNodes(workers, %s): CA read %v; expected ErrNotImplemented", ourNodes[0].Name, err)
		}
		expectUntouched(t, before, e.Sim.Servers(t), "after refused deletions")
		expectTarget(t, workers, 2, "after refused deletions")
	})

	step("DeleteNodesBelowMinRefused", func(t *testing.T) {
		if err := tuned.IncreaseSize(1); err != nil {
			t.Fatalf("NodeGroupIncreaseSize(tuned, 1): CA read error %v; expected success", err)
		}
		var id string
		eventually(t, 30*time.Second, "NodeGroupNodes(tuned): one running instance", func() (bool, string) {
			_ = ca.Refresh()
			inst := nodes(t, tuned)
			if len(inst) == 1 && inst[0].Status != nil && inst[0].Status.State == cloudprovider.InstanceRunning {
				id = inst[0].Id
				return true, ""
			}
			return false, describe(inst)
		})
		s := e.Sim.Servers(t)[uuidOf(id)]
		if err := tuned.DeleteNodes([]*apiv1.Node{k8sNode(s.Name, id, nil)}); err == nil {
			t.Errorf("NodeGroupDeleteNodes(tuned, its only node) with min 1: CA read success; expected an error (below min size)")
		}
		if _, ok := e.Sim.Servers(t)[uuidOf(id)]; !ok {
			t.Errorf("NodeGroupDeleteNodes(tuned) below min: the server was deleted; expected it kept")
		}
		expectTarget(t, tuned, 1, "after a refused delete below min")
		// CA prices running nodes of a group too: the configured price applies.
		pm, _ := ca.Pricing()
		now := time.Now().Truncate(time.Second)
		if p, err := pm.NodePrice(k8sNode(s.Name, id, nil), now, now.Add(time.Hour)); err != nil || math.Abs(p-0.25) > 1e-9 {
			t.Errorf("PricingNodePrice(tuned node %s, 1h): CA read price=%v err=%v; expected 0.25 (pricePerHour)", s.Name, p, err)
		}
	})

	step("DecreaseTargetSizeRefused", func(t *testing.T) {
		for _, d := range []int{-1, 0, 1} {
			if err := workers.DecreaseTargetSize(d); err == nil {
				t.Errorf("NodeGroupDecreaseTargetSize(workers, %d) with no pending creations: CA read success; expected an error (existing servers are not removed this way)", d)
			}
		}
		expectTarget(t, workers, 2, "after refused decreases")
		servers := e.Sim.Servers(t)
		for _, n := range ourNodes {
			if s, ok := servers[uuidOf(n.Spec.ProviderID)]; !ok || s.Status != "running" {
				t.Errorf("NodeGroupDecreaseTargetSize refused: server %s is %q; expected it running", n.Name, s.Status)
			}
		}
	})

	// Failed creations, as CA's clusterstate reads them: a creating instance
	// with ErrorInfo, cleared by DeleteNodes with CA's own fake node, or by
	// DecreaseTargetSize.
	for _, f := range creationFailures {
		step("NodesFailedCreate"+f.name, func(t *testing.T) {
			before := targetSize(t, workers)
			e.Sim.Control(t, "POST", f.path, f.inject)
			defer e.Sim.Control(t, "POST", f.path, f.reset)
			if err := workers.IncreaseSize(1); err != nil {
				t.Fatalf("NodeGroupIncreaseSize(workers, 1) with %s: CA read error %v; expected the request accepted (the failure is reported through NodeGroupNodes)", f.desc, err)
			}
			failed := failedInstance(t, ca, workers, f.desc)
			if ei := failed.Status.ErrorInfo; ei.ErrorClass != f.class || ei.ErrorCode == "" || ei.ErrorMessage == "" {
				t.Errorf("NodeGroupNodes(workers) with %s: CA read error info %+v; expected class %v with a code and a message", f.desc, *ei, f.class)
			}
			expectTarget(t, workers, before+1, "with a failed creation not yet cleared")
			if f.decrease {
				if err := workers.DecreaseTargetSize(-1); err != nil {
					t.Fatalf("NodeGroupDecreaseTargetSize(workers, -1) with one failed creation: CA read error %v; expected success", err)
				}
			} else if err := workers.DeleteNodes([]*apiv1.Node{clusterstate.FakeNode(failed, cloudprovider.FakeNodeCreateError)}); err != nil {
				t.Fatalf("NodeGroupDeleteNodes(workers, CA's create-error fake node %q): CA read error %v; expected success", failed.Id, err)
			}
			expectTarget(t, workers, before, "after CA cleared the failed instance")
			e.waitGone(t, workers, failed.Id)
		})
	}

	step("DeleteNodes", func(t *testing.T) {
		victim := ourNodes[0]
		if err := workers.DeleteNodes([]*apiv1.Node{victim}); err != nil {
			t.Fatalf("NodeGroupDeleteNodes(workers, %s): CA read error %v; expected success", victim.Name, err)
		}
		expectTarget(t, workers, 1, "right after deleting one of two")
		e.waitGone(t, workers, victim.Spec.ProviderID)
		expectTarget(t, workers, 1, "after the deletion settled")
		servers := e.Sim.Servers(t)
		for _, u := range []string{uuidOf(ourNodes[1].Spec.ProviderID), foreignUUID, cpUUID, otherClusterUUID} {
			if _, ok := servers[u]; !ok {
				t.Errorf("NodeGroupDeleteNodes(workers, %s) also deleted server %s; expected only the named node deleted", victim.Name, u)
			}
		}
		if err := workers.DeleteNodes([]*apiv1.Node{victim}); err != nil {
			t.Errorf("NodeGroupDeleteNodes(workers, already deleted %s): CA read error %v; expected success (already gone counts as deleted)", victim.Name, err)
		}
		expectTarget(t, workers, 1, "after deleting an already deleted node")
	})

	step("Cleanup", func(t *testing.T) {
		if err := ca.Cleanup(); err != nil {
			t.Errorf("Cleanup: CA read error %v; expected success", err)
		}
	})
}

// creationFailure is one way a creation fails after IncreaseSize accepted it.
type creationFailure struct {
	name, desc    string
	path          string // simulator control endpoint
	inject, reset any
	class         cloudprovider.InstanceErrorClass
	decrease      bool // clear it with DecreaseTargetSize(-1) instead of DeleteNodes
}

var creationFailures = []creationFailure{
	{name: "QuotaOutOfResources", desc: "the server quota exhausted", path: "/_sim/quota",
		inject: map[string]any{"servers": 0}, reset: map[string]any{"servers": nil}, class: cloudprovider.OutOfResourcesErrorClass},
	{name: "CapacityOutOfResources", desc: "flex-8-2 out of capacity in lpg1", path: "/_sim/faults",
		inject: map[string]any{"outOfCapacity": []map[string]string{{"flavor": "flex-8-2", "zone": "lpg1"}}}, reset: map[string]any{"outOfCapacity": []any{}},
		class: cloudprovider.OutOfResourcesErrorClass, decrease: true},
	{name: "RejectedOther", desc: "the create request rejected (400)", path: "/_sim/faults",
		inject: map[string]any{"addRules": []map[string]any{{"method": "POST", "path": "/v1/servers", "action": "error", "status": 400, "count": 1,
			"body": map[string]string{"image": "conformance: injected rejection"}}}},
		reset: map[string]any{"rules": []any{}}, class: cloudprovider.OtherErrorClass},
	{name: "BootErrorOther", desc: "the server booting into status error", path: "/_sim/faults",
		inject: map[string]any{"bootOutcome": "error"}, reset: map[string]any{"bootOutcome": "running"}, class: cloudprovider.OtherErrorClass},
}

// failedInstance waits for the group's one instance with error info and
// checks CA would act on it (only creating instances' errors count).
func failedInstance(t *testing.T, ca cloudprovider.CloudProvider, g cloudprovider.NodeGroup, desc string) cloudprovider.Instance {
	t.Helper()
	var failed cloudprovider.Instance
	eventually(t, 30*time.Second, "NodeGroupNodes("+g.Id()+") with "+desc+": an instance with error info", func() (bool, string) {
		_ = ca.Refresh()
		inst := nodes(t, g)
		for _, i := range inst {
			if i.Status != nil && i.Status.ErrorInfo != nil {
				failed = i
				return true, ""
			}
		}
		return false, describe(inst)
	})
	if failed.Status.State != cloudprovider.InstanceCreating {
		t.Errorf("NodeGroupNodes(%s) with %s: CA read %s; expected state creating (CA acts only on errors of creating instances)", g.Id(), desc, describe([]cloudprovider.Instance{failed}))
	}
	return failed
}

// expectUntouched fails for every server of before that is gone or changed status.
func expectUntouched(t *testing.T, before, after map[string]harness.SimServer, when string) {
	t.Helper()
	for uuid, s := range before {
		a, ok := after[uuid]
		if !ok {
			t.Errorf("%s: server %s (%s) was deleted; expected nothing deleted", when, s.Name, uuid)
		} else if a.Status != s.Status && a.Status != "running" {
			t.Errorf("%s: server %s went from %s to %s; expected untouched", when, s.Name, s.Status, a.Status)
		}
	}
}

// waitGone waits until instance id has left the cloud and CA reads it in the
// group at most as deleting.
func (e *Env) waitGone(t *testing.T, g cloudprovider.NodeGroup, id string) {
	t.Helper()
	eventually(t, 30*time.Second, id+" leaves the cloud and NodeGroupNodes("+g.Id()+")", func() (bool, string) {
		_ = e.CA.Refresh()
		inst := nodes(t, g)
		for _, i := range inst {
			if i.Id == id && !(i.Status != nil && i.Status.State == cloudprovider.InstanceDeleting) {
				return false, describe(inst)
			}
		}
		_, inCloud := e.Sim.Servers(t)[uuidOf(id)]
		return !inCloud, describe(inst)
	})
}
