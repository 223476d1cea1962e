package conformance

import (
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/autoscaler/cluster-autoscaler/simulator/framework"
)

type templateWant struct {
	group, flavor, zone, region string
	cpu, memGiB, volumeGiB      int64
	gpus                        int64
	labels                      map[string]string
	taints                      []apiv1.Taint
}

// checkTemplate asserts on a template node as CA holds it after
// simulator.SanitizedTemplateNodeInfoFromNodeGroup.
func checkTemplate(t *testing.T, n *apiv1.Node, w templateWant) {
	t.Helper()
	rpc := "NodeGroupTemplateNodeInfo(" + w.group + ")"
	labels := map[string]string{
		"kubernetes.io/os":                         "linux",
		"kubernetes.io/arch":                       "amd64",
		"node.kubernetes.io/instance-type":         w.flavor,
		"topology.kubernetes.io/region":            w.region,
		"topology.kubernetes.io/zone":              w.zone,
		groupLabel:                                 w.group,
		"beta.kubernetes.io/instance-type":         w.flavor, // added by CA's sanitising
		"failure-domain.beta.kubernetes.io/region": w.region,
		"failure-domain.beta.kubernetes.io/zone":   w.zone,
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
	key := func(ts []apiv1.Taint) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = t.Key + "=" + t.Value + ":" + string(t.Effect)
		}
		sort.Strings(s)
		return strings.Join(s, ",")
	}
	return key(got) == key(want)
}

// daemonSets are passed to CA's sanitising, which places a DaemonSet's pod on
// a template node when the DaemonSet's node selector matches the template's
// labels and it tolerates the template's taints (CA's force-ds path).
var daemonSets = []*appsv1.DaemonSet{
	daemonSet("agent-everywhere", map[string]string{"kubernetes.io/os": "linux"}, []apiv1.Toleration{{Operator: apiv1.TolerationOpExists}}),
	daemonSet("agent-untainted", map[string]string{"kubernetes.io/arch": "amd64"}, nil),
	daemonSet("agent-arm64", map[string]string{"kubernetes.io/arch": "arm64"}, []apiv1.Toleration{{Operator: apiv1.TolerationOpExists}}),
}

// wantDaemonPods: only workers carries a taint (dedicated=batch:NoSchedule).
var wantDaemonPods = map[string][]string{
	"workers": {"agent-everywhere"},
	"tuned":   {"agent-everywhere", "agent-untainted"},
	"large":   {"agent-everywhere", "agent-untainted"},
	"gpu":     {"agent-everywhere", "agent-untainted"},
}

func daemonSet(name string, selector map[string]string, tolerations []apiv1.Toleration) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", UID: types.UID("uid-" + name)},
		Spec: appsv1.DaemonSetSpec{Template: apiv1.PodTemplateSpec{Spec: apiv1.PodSpec{
			NodeSelector: selector,
			Tolerations:  tolerations,
			Containers:   []apiv1.Container{{Name: "agent", Image: "registry.example/agent:1"}},
		}}},
	}
}

func checkDaemonSetPods(t *testing.T, group string, pods []*framework.PodInfo) {
	t.Helper()
	var got []string
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p.Pod); ref != nil && ref.Kind == "DaemonSet" {
			got = append(got, ref.Name)
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(wantDaemonPods[group], ",") {
		t.Errorf("NodeGroupTemplateNodeInfo(%s): CA placed DaemonSet pods %v on the template; expected %v (node selectors on os/arch labels, tolerations against the template's taints)", group, got, wantDaemonPods[group])
	}
}
