// A CA scale-up across the groups one entry expands to, run with CA 1.36.1's own
// parts in the order its ScaleUpOrchestrator uses them (core/scaleup/orchestrator):
// each group's template as CA sanitizes it; the pods' predicates on a fresh template
// node (SchedulablePodGroups); the binpacking estimator for the node count
// (ComputeExpansionOption); the expander (least-waste, price, least-nodes); then
// the balancing processor spreading the chosen count over the zone siblings.
// Templates, prices and GPU answers come from the binary over gRPC.
package nodegroupset

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	ca_context "k8s.io/autoscaler/cluster-autoscaler/context"
	"k8s.io/autoscaler/cluster-autoscaler/estimator"
	"k8s.io/autoscaler/cluster-autoscaler/expander"
	"k8s.io/autoscaler/cluster-autoscaler/expander/leastnodes"
	"k8s.io/autoscaler/cluster-autoscaler/expander/price"
	"k8s.io/autoscaler/cluster-autoscaler/expander/waste"
	"k8s.io/autoscaler/cluster-autoscaler/simulator/clustersnapshot/testsnapshot"
	"k8s.io/autoscaler/cluster-autoscaler/simulator/framework"
	"k8s.io/autoscaler/cluster-autoscaler/utils/gpu"
	. "k8s.io/autoscaler/cluster-autoscaler/utils/test"
	"k8s.io/autoscaler/cluster-autoscaler/utils/units"
)

// Flavors of two shapes (flex-8-4: 2 GiB per vCPU; flex-16-4 and plus-16-4: 4 GiB per
// vCPU), in both zones, and GPU flavors with one and two GPUs.
const scaleUpConfig = `clusterName: su
startupGrace: 0s
nodeGroups:
  - name: gen
    flavors: [flex-8-4, flex-16-4, plus-16-4]
    zones: [lpg1, rma1]
    image: debian-13
    min: 0
    max: 20
  - name: gpu
    flavors: [gpu2-128-16-1-200, gpu2-256-32-2-400]
    zone: rma1
    image: debian-13
    min: 0
    max: 4
`

// pods makes n identical pods requesting cpu millicores, mem bytes and gpus.
func pods(n int, cpu, mem int64, gpus int64) []*apiv1.Pod {
	out := make([]*apiv1.Pod, n)
	for i := range out {
		out[i] = BuildTestPod(fmt.Sprintf("p-%d-%d-%d-%d", cpu, mem, gpus, i), cpu, mem, func(p *apiv1.Pod) {
			if gpus > 0 {
				p.Spec.Containers[0].Resources.Requests[gpu.ResourceNvidiaGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
			}
		})
	}
	return out
}

// expansionOptions is what CA weighs: for every group whose fresh node takes the pods,
// how many nodes the binpacking estimator needs for them.
func expansionOptions(t *testing.T, cp cloudprovider.CloudProvider, infos map[string]*framework.NodeInfo, podSet []*apiv1.Pod) []expander.Option {
	t.Helper()
	snapshot := testsnapshot.NewTestSnapshotOrDie(t)
	var options []expander.Option
	for _, ng := range cp.NodeGroups() {
		info := infos[ng.Id()]
		snapshot.Fork()
		if err := snapshot.AddNodeInfo(info); err != nil {
			t.Fatal(err)
		}
		fits := snapshot.CheckPredicates(podSet[0], info.Node().Name) == nil
		snapshot.Revert()
		if !fits {
			continue
		}
		limiter := estimator.NewThresholdBasedEstimationLimiter([]estimator.Threshold{estimator.NewStaticThreshold(1000, time.Minute)})
		est := estimator.NewBinpackingNodeEstimator(snapshot, limiter, estimator.NewDecreasingPodOrderer(), estimator.NewEstimationContext(1000, nil, 0), nil, false)
		count, scheduled := est.Estimate([]estimator.PodEquivalenceGroup{{Pods: podSet}}, info, ng)
		if count > 0 {
			options = append(options, expander.Option{NodeGroup: ng, NodeCount: count, Pods: scheduled})
		}
	}
	return options
}

func describe(options []expander.Option) string {
	var s []string
	for _, o := range options {
		s = append(s, fmt.Sprintf("%s×%d(%d pods)", o.NodeGroup.Id(), o.NodeCount, len(o.Pods)))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// flavorsOf are the flavors (instance types of the templates) of the chosen options.
func flavorsOf(options []expander.Option, infos map[string]*framework.NodeInfo) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range options {
		f := infos[o.NodeGroup.Id()].Node().Labels[apiv1.LabelInstanceTypeStable]
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

type noNodes struct{}

func (noNodes) List() ([]*apiv1.Node, error)      { return nil, nil }
func (noNodes) Get(string) (*apiv1.Node, error) { return nil, fmt.Errorf("no nodes") }

// balanced spreads the chosen option's node count over it and its similar groups, as CA does with --balance-similar-node-groups.
func balanced(t *testing.T, cp cloudprovider.CloudProvider, infos map[string]*framework.NodeInfo, chosen expander.Option, options []expander.Option) map[string]int {
	t.Helper()
	ctx := &ca_context.AutoscalingContext{CloudProvider: cp}
	similar, err := balancing().FindSimilarNodeGroups(ctx, chosen.NodeGroup, infos)
	if err != nil {
		t.Fatal(err)
	}
	set := []cloudprovider.NodeGroup{chosen.NodeGroup}
	for _, ng := range similar {
		for _, o := range options { // only groups that can take the pods too (ComputeSimilarNodeGroups)
			if o.NodeGroup.Id() == ng.Id() {
				set = append(set, ng)
			}
		}
	}
	plan, err := balancing().BalanceScaleUpBetweenGroups(ctx, set, chosen.NodeCount)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range plan {
		out[p.Group.Id()] = p.NewSize - p.CurrentSize
	}
	return out
}

func TestLeastWastePicksTheFlavorOfThePodsShape(t *testing.T) {
	cp := provider(t, scaleUpConfig)
	infos := templates(t, cp)
	cases := []struct {
		name string
		pods []*apiv1.Pod
		want string
	}{
		// 1.8 CPU and 1 GiB each: CPU-bound. Two fit a flex-8-4 or a flex-16-4 (3.87 CPU
		// allocatable), four nodes either way; flex-8-4 has half the memory to waste.
		{"cpu-heavy", pods(8, 1800, 1*units.GiB, 0), "flex-8-4"},
		// 0.5 CPU and 5 GiB each: memory-bound. One fits a flex-8-4 (5.4 GiB allocatable),
		// two a flex-16-4 (12.5 GiB): four flex-16-4 waste less than eight flex-8-4.
		// plus-16-4 has the same shape and size: least-waste cannot tell them apart.
		{"memory-heavy", pods(8, 500, 5*units.GiB, 0), "flex-16-4 plus-16-4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			options := expansionOptions(t, cp, infos, c.pods)
			for _, o := range options {
				if len(o.Pods) != len(c.pods) {
					t.Errorf("%s takes only %d of %d pods", o.NodeGroup.Id(), len(o.Pods), len(c.pods))
				}
			}
			best := waste.NewFilter().BestOptions(options, infos)
			t.Logf("options: %s; least-waste: %s", describe(options), describe(best))
			if got := strings.Join(flavorsOf(best, infos), " "); got != c.want {
				t.Fatalf("least-waste picked %s (%s), want %s", got, describe(best), c.want)
			}
			// Zone siblings tie; CA takes one (at random) and balances the count over both zones.
			for _, chosen := range best {
				id := chosen.NodeGroup.Id()
				sibling := strings.TrimSuffix(id, "lpg1") + "rma1"
				if strings.HasSuffix(id, "rma1") {
					sibling = strings.TrimSuffix(id, "rma1") + "lpg1"
				}
				want := map[string]int{id: chosen.NodeCount / 2, sibling: chosen.NodeCount / 2}
				if got := balanced(t, cp, infos, chosen, options); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("balanced from %s: %v, want %v", id, got, want)
				}
			}
		})
	}
}

func TestPriceExpanderFollowsTheConfiguredPrices(t *testing.T) {
	// Six pods of 1.5 CPU and 4 GiB: two per flex-16-4 or plus-16-4, one per flex-8-4.
	podSet := pods(6, 1500, 4*units.GiB, 0)
	pair := strings.Replace(scaleUpConfig, "[flex-8-4, flex-16-4, plus-16-4]", "[flex-16-4, plus-16-4]", 1)
	cases := []struct{ name, config, prices, want string }{
		// flex-16-4 and plus-16-4 have the same template but for the instance type: only
		// the price tells them apart. The built-in estimates make shared vCPUs cheaper
		// (0.096 against 0.152 CHF/h); a configured price for flex-16-4 turns that round.
		{"pair, built-in prices", pair, "", "flex-16-4"},
		{"pair, flex-16-4 at 0.5 CHF/h", pair, "prices: {flex-16-4: 0.5}\n", "plus-16-4"},
		// With flex-8-4 too: six flex-8-4 (6 × 0.06) cost less than three plus-16-4
		// (3 × 0.152), and CA's unfitness for both 4-vCPU flavors is alike.
		{"all, built-in prices", scaleUpConfig, "", "flex-16-4"},
		{"all, flex-16-4 at 0.5 CHF/h", scaleUpConfig, "prices: {flex-16-4: 0.5}\n", "flex-8-4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cp := provider(t, strings.Replace(c.config, "nodeGroups:", c.prices+"nodeGroups:", 1))
			infos := templates(t, cp)
			options := expansionOptions(t, cp, infos, podSet)
			best := price.NewFilter(cp, price.NewSimplePreferredNodeProvider(noNodes{}), price.SimpleNodeUnfitness).BestOptions(options, infos)
			t.Logf("options: %s; price: %s", describe(options), describe(best))
			if got := strings.Join(flavorsOf(best, infos), " "); got != c.want {
				t.Fatalf("the price expander picked %s, want %s", got, c.want)
			}
		})
	}
}

func TestGPUPodsGoToGPUGroupsOnly(t *testing.T) {
	cp := provider(t, scaleUpConfig)
	infos := templates(t, cp)
	// Two pods of one GPU each: no flex or plus template has nvidia.com/gpu, so only the
	// GPU groups are options; least-nodes takes the two-GPU flavor (one node, not two).
	options := expansionOptions(t, cp, infos, pods(2, 4000, 16*units.GiB, 1))
	if got := describe(options); got != "gpu-gpu2-128-16-1-200-rma1×2(2 pods) gpu-gpu2-256-32-2-400-rma1×1(2 pods)" {
		t.Fatalf("options for GPU pods: %s", got)
	}
	best := leastnodes.NewFilter().BestOptions(options, infos)
	if got := strings.Join(flavorsOf(best, infos), " "); got != "gpu2-256-32-2-400" {
		t.Fatalf("least-nodes picked %s", got)
	}
	// The price expander weighs GPU groups too (with CA's GPU unfitness): it needs our prices for them.
	if p := price.NewFilter(cp, price.NewSimplePreferredNodeProvider(noNodes{}), price.SimpleNodeUnfitness).BestOptions(options, infos); len(p) == 0 {
		t.Fatal("the price expander found no priced option for GPU pods")
	}
}
