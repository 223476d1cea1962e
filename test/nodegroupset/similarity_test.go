// --balance-similar-node-groups on the groups one configuration entry expands to:
// CA 1.36.1's own BalancingNodeGroupSetProcessor with the comparator CA uses for the
// externalgrpc provider (processors/nodegroupset: CreateGenericNodeInfoComparator,
// default difference ratios, no extra ignored labels) finds each group's zone
// siblings, and only them, and splits a scale-up between them.
package nodegroupset

import (
	"reflect"
	"sort"
	"testing"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	"k8s.io/autoscaler/cluster-autoscaler/config"
	ca_context "k8s.io/autoscaler/cluster-autoscaler/context"
	"k8s.io/autoscaler/cluster-autoscaler/processors/nodegroupset"
	"k8s.io/autoscaler/cluster-autoscaler/utils/gpu"
)

const talosWorker = `
      version: v1alpha1
      machine:
        type: worker
        token: abc.def
        kubelet:
          extraConfig:
            maxPods: 64
      cluster:
        controlPlane:
          endpoint: https://cp:6443
`

const balancedConfig = `clusterName: bal
startupGrace: 0s
nodeGroups:
  - name: web
    flavors: [flex-8-2, flex-16-4]
    zones: [lpg1, rma1]
    image: debian-13
    min: 0
    max: 4
    labels: {tier: web}
    taints: [{key: dedicated, value: web, effect: NoSchedule}]
  - name: batch
    flavor: flex-8-2
    zones: [lpg1, rma1]
    image: debian-13
    min: 0
    max: 4
    labels: {tier: batch}
  - name: gpu
    flavor: gpu2-256-32-2-400
    zones: [lpg1, rma1]
    image: custom:talos-1.13.2
    min: 0
    max: 2
    userData: |` + talosWorker

// The processor CA builds for the externalgrpc provider (builder/autoscaler.go) with its flags' defaults.
func balancing() *nodegroupset.BalancingNodeGroupSetProcessor {
	return &nodegroupset.BalancingNodeGroupSetProcessor{
		Comparator: nodegroupset.CreateGenericNodeInfoComparator(nil, config.NewDefaultNodeGroupDifferenceRatios()),
	}
}

func TestZoneSiblingsAreSimilarNodeGroups(t *testing.T) {
	cp := provider(t, balancedConfig)
	infos := templates(t, cp)
	want := map[string][]string{
		"web-flex-8-2-lpg1":          {"web-flex-8-2-rma1"},
		"web-flex-8-2-rma1":          {"web-flex-8-2-lpg1"},
		"web-flex-16-4-lpg1":         {"web-flex-16-4-rma1"},
		"web-flex-16-4-rma1":         {"web-flex-16-4-lpg1"},
		"batch-flex-8-2-lpg1":        {"batch-flex-8-2-rma1"},
		"batch-flex-8-2-rma1":        {"batch-flex-8-2-lpg1"},
		"gpu-gpu2-256-32-2-400-lpg1": {"gpu-gpu2-256-32-2-400-rma1"},
		"gpu-gpu2-256-32-2-400-rma1": {"gpu-gpu2-256-32-2-400-lpg1"},
	}
	if got := ids(cp.NodeGroups()); len(got) != len(want) {
		t.Fatalf("node groups: %v", got)
	}
	ctx := &ca_context.AutoscalingContext{CloudProvider: cp}
	for _, ng := range cp.NodeGroups() {
		similar, err := balancing().FindSimilarNodeGroups(ctx, ng, infos)
		if err != nil {
			t.Fatalf("FindSimilarNodeGroups(%s): %v", ng.Id(), err)
		}
		if got := ids(similar); !reflect.DeepEqual(got, want[ng.Id()]) {
			t.Errorf("similar to %s: got %v, want %v", ng.Id(), got, want[ng.Id()])
		}
	}
	// The siblings' templates differ in nothing but the labels CA ignores.
	a, b := infos["web-flex-8-2-lpg1"].Node(), infos["web-flex-8-2-rma1"].Node()
	for k, v := range a.Labels {
		if b.Labels[k] != v && !nodegroupset.BasicIgnoredLabels[k] {
			t.Errorf("label %s differs: %q in lpg1, %q in rma1", k, v, b.Labels[k])
		}
	}
	if a.Labels[apiv1.LabelTopologyZone] != "lpg1" || b.Labels[apiv1.LabelTopologyZone] != "rma1" {
		t.Errorf("zone labels: %q, %q", a.Labels[apiv1.LabelTopologyZone], b.Labels[apiv1.LabelTopologyZone])
	}
	t.Logf("web-flex-8-2: siblings similar; labels differing only in %v", differing(a.Labels, b.Labels))
}

// Why the node-group label names the entry, not the group: CA compares every label
// it does not ignore, so a label per group would keep zone siblings apart.
func TestAGroupNamedLabelWouldKeepSiblingsApart(t *testing.T) {
	cp := provider(t, balancedConfig)
	infos := templates(t, cp)
	compare := nodegroupset.CreateGenericNodeInfoComparator(nil, config.NewDefaultNodeGroupDifferenceRatios())
	lpg, rma := infos["web-flex-8-2-lpg1"], infos["web-flex-8-2-rma1"]
	if !compare(lpg, rma) {
		t.Fatal("the siblings as served are not similar")
	}
	renamed := rma.DeepCopy()
	renamed.Node().Labels["autoscaler-cloudscale/node-group"] = "web-flex-8-2-rma1"
	if compare(lpg, renamed) {
		t.Fatal("CA's comparator ignored a differing label; this test proves nothing")
	}
}

func TestBalancedScaleUpSplitsBetweenZones(t *testing.T) {
	cp := provider(t, balancedConfig)
	ctx := &ca_context.AutoscalingContext{CloudProvider: cp}
	siblings := []cloudprovider.NodeGroup{group(t, cp, "web-flex-8-2-lpg1"), group(t, cp, "web-flex-8-2-rma1")}
	plan, err := balancing().BalanceScaleUpBetweenGroups(ctx, siblings, 6)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, p := range plan {
		got[p.Group.Id()] = p.NewSize
	}
	if want := map[string]int{"web-flex-8-2-lpg1": 3, "web-flex-8-2-rma1": 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("6 new nodes split as %v, want %v", got, want)
	}
}

func TestGPUTemplateAndGPUAnswersAgree(t *testing.T) {
	cp := provider(t, balancedConfig)
	infos := templates(t, cp)
	node := infos["gpu-gpu2-256-32-2-400-lpg1"].Node()
	cfg := cp.GetNodeGpuConfig(node)
	if cfg == nil {
		t.Fatalf("CA sees no GPU on the GPU template (labels %v, allocatable %v)", node.Labels, node.Status.Allocatable)
	}
	if cfg.Label != cp.GPULabel() || cfg.Type != "nvidia-rtx-pro-6000-max-q" || cfg.ExtendedResourceName != gpu.ResourceNvidiaGPU {
		t.Errorf("GPU config of the template: %+v (GPULabel %q)", cfg, cp.GPULabel())
	}
	if _, ok := cp.GetAvailableGPUTypes()[cfg.Type]; !ok {
		t.Errorf("GPU type %q of the template is not among GetAvailableGPUTypes %v", cfg.Type, cp.GetAvailableGPUTypes())
	}
	if q := node.Status.Allocatable[gpu.ResourceNvidiaGPU]; q.Value() != 2 {
		t.Errorf("allocatable nvidia.com/gpu = %s, want 2", q.String())
	}
	if cp.GetNodeGpuConfig(infos["web-flex-8-2-lpg1"].Node()) != nil {
		t.Error("a flex flavor's template is seen as a GPU node")
	}
	t.Logf("GPU template: %+v; available types %v", *cfg, cp.GetAvailableGPUTypes())
}

func differing(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
