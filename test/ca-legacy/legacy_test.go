package legacy

// The same binary as read by a Cluster Autoscaler <= 1.34.1 (old wire:
// template in nodeInfo field 1, option durations in 3/4/5, pricing times in
// 2/3, the Pod embedded in field 1). Failures name the RPC, what CA read and
// what it expected.

import (
	"errors"
	"math"
	"testing"
	"time"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"autoscaler-cloudscale/test/ca/harness"
)

const providerConfig = `clusterName: conformance
startupGrace: 0s
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
`

func TestCA1341OverMTLS(t *testing.T) { runLegacy(t, true) }

func TestCA1341OverH2C(t *testing.T) { runLegacy(t, false) }

func runLegacy(t *testing.T, mtls bool) {
	bin := harness.Binary(t)
	dir := t.TempDir()
	sim := harness.StartSim(t, bin, "--boot-seconds", "1")
	cfg := harness.WriteFile(t, dir, "provider.yaml", providerConfig)
	var certs *harness.Certs
	if mtls {
		certs = harness.GenerateCerts(t, dir)
	}
	srv := harness.StartServe(t, bin, cfg, sim, certs)
	ca, err := dial(harness.CloudConfig(t, dir, "cloud-config.yaml", srv.Addr, certs, "5s"))
	if err != nil {
		t.Fatalf("dialling as CA 1.34.1: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve output:\n%s", srv.Output())
		}
	})
	templates := map[string]*apiv1.Node{}

	t.Run("NodeGroups", func(t *testing.T) {
		groups, err := ca.nodeGroups()
		if err != nil || len(groups) != 3 {
			t.Fatalf("NodeGroups: CA read %v err=%v; expected workers, tuned and large", groups, err)
		}
	})

	t.Run("TemplateNodeInfoField1", func(t *testing.T) {
		for _, id := range []string{"workers", "tuned", "large"} {
			n, err := ca.templateNode(id)
			if err != nil || n == nil {
				t.Fatalf("NodeGroupTemplateNodeInfo(%s): CA 1.34.1 read node=%v err=%v from field 1 (nodeInfo); expected a Node there", id, n, err)
			}
			templates[id] = n
		}
		n := templates["workers"]
		for k, v := range map[string]string{
			"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "flex-8-2",
			"topology.kubernetes.io/region": "lpg", "topology.kubernetes.io/zone": "lpg1",
			"autoscaler-cloudscale/node-group": "workers", "team": "blue",
		} {
			if n.Labels[k] != v {
				t.Errorf("NodeGroupTemplateNodeInfo(workers): CA 1.34.1 read label %s=%q; expected %q", k, n.Labels[k], v)
			}
		}
		want := apiv1.Taint{Key: "dedicated", Value: "batch", Effect: apiv1.TaintEffectNoSchedule}
		if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != want.Key || n.Spec.Taints[0].Value != want.Value || n.Spec.Taints[0].Effect != want.Effect {
			t.Errorf("NodeGroupTemplateNodeInfo(workers): CA 1.34.1 read taints %v; expected [%v]", n.Spec.Taints, want)
		}
		capCPU, allocCPU := n.Status.Capacity[apiv1.ResourceCPU], n.Status.Allocatable[apiv1.ResourceCPU]
		if capCPU.MilliValue() != 2000 || allocCPU.Cmp(capCPU) >= 0 {
			t.Errorf("NodeGroupTemplateNodeInfo(workers): CA 1.34.1 read cpu capacity %s allocatable %s; expected 2 and less than 2", capCPU.String(), allocCPU.String())
		}
		capMem, allocMem := n.Status.Capacity[apiv1.ResourceMemory], n.Status.Allocatable[apiv1.ResourceMemory]
		if capMem.Value() > 8<<30 || capMem.Value() < 7<<30 || allocMem.Cmp(capMem) >= 0 {
			t.Errorf("NodeGroupTemplateNodeInfo(workers): CA 1.34.1 read memory capacity %s allocatable %s; expected about 8Gi and allocatable below it", capMem.String(), allocMem.String())
		}
		if pods := n.Status.Capacity[apiv1.ResourcePods]; pods.Value() <= 0 {
			t.Errorf("NodeGroupTemplateNodeInfo(workers): CA 1.34.1 read pods capacity %s; expected > 0", pods.String())
		}
	})

	defaults := options{ScaleDownUtilizationThreshold: 0.5, ScaleDownGpuUtilizationThreshold: 0.45, ScaleDownUnneededTime: 10 * time.Minute,
		ScaleDownUnreadyTime: 21 * time.Minute, MaxNodeProvisionTime: 15 * time.Minute, IgnoreDaemonSetsUtilization: true}

	t.Run("GetOptionsLegacyDurations", func(t *testing.T) {
		o, err := ca.getOptions("tuned", defaults)
		if err != nil || o == nil {
			t.Fatalf("NodeGroupGetOptions(tuned): CA 1.34.1 read options=%v err=%v; expected the options with durations in fields 3/4/5", o, err)
		}
		want := defaults
		want.ScaleDownUtilizationThreshold, want.ScaleDownUnneededTime, want.MaxNodeProvisionTime = 0.3, 5*time.Minute, 20*time.Minute
		if *o != want {
			t.Errorf("NodeGroupGetOptions(tuned): CA 1.34.1 read %+v; expected %+v", *o, want)
		}
		if o, err := ca.getOptions("workers", defaults); !errors.Is(err, errNotImplemented) {
			t.Errorf("NodeGroupGetOptions(workers), no options configured: CA 1.34.1 read %v err=%v; expected UNIMPLEMENTED", o, err)
		}
	})

	t.Run("NodePriceLegacyTimes", func(t *testing.T) {
		now := time.Now().Truncate(time.Second)
		price := func(id string, d time.Duration) float64 {
			p, err := ca.nodePrice(templates[id], now, now.Add(d))
			if err != nil {
				t.Fatalf("PricingNodePrice(%s template, %s) with times in fields 2/3: CA 1.34.1 read error %v; expected a price", id, d, err)
			}
			return p
		}
		w1, w2, l1 := price("workers", time.Hour), price("workers", 2*time.Hour), price("large", time.Hour)
		if !(w1 > 0) || math.Abs(w2-2*w1) > 1e-9*math.Max(1, w1) {
			t.Errorf("PricingNodePrice(workers): CA 1.34.1 read %v for 1h and %v for 2h; expected a positive price that doubles (are startTime/endTime, fields 2/3, read?)", w1, w2)
		}
		if !(l1 > w1) {
			t.Errorf("PricingNodePrice(large flex-32-8, 1h): CA 1.34.1 read %v; expected more than workers' flex-8-2 %v", l1, w1)
		}
	})

	t.Run("PodPriceLegacyPod", func(t *testing.T) {
		now := time.Now().Truncate(time.Second)
		mk := func(cpu, mem string) *apiv1.Pod {
			return &apiv1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: apiv1.PodSpec{Containers: []apiv1.Container{{
				Name: "c", Image: "app", Resources: apiv1.ResourceRequirements{Requests: apiv1.ResourceList{apiv1.ResourceCPU: resource.MustParse(cpu), apiv1.ResourceMemory: resource.MustParse(mem)}}}}}}
		}
		small, err := ca.podPrice(mk("500m", "512Mi"), now, now.Add(time.Hour))
		if err != nil || !(small > 0) {
			t.Fatalf("PricingPodPrice(500m/512Mi, 1h) with the Pod in field 1: CA 1.34.1 read %v err=%v; expected > 0", small, err)
		}
		big, err := ca.podPrice(mk("2", "4Gi"), now, now.Add(time.Hour))
		if err != nil || !(big > small) {
			t.Errorf("PricingPodPrice(2/4Gi, 1h): CA 1.34.1 read %v err=%v; expected more than %v", big, err, small)
		}
	})
}
