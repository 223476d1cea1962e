package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	"k8s.io/autoscaler/cluster-autoscaler/config"
)

// group returns the node group with this id from CA's NodeGroups().
func group(t *testing.T, ca cloudprovider.CloudProvider, id string) cloudprovider.NodeGroup {
	t.Helper()
	for _, g := range ca.NodeGroups() {
		if g.Id() == id {
			return g
		}
	}
	t.Fatalf("NodeGroups: CA read no group %q; expected the configured group", id)
	return nil
}

func targetSize(t *testing.T, g cloudprovider.NodeGroup) int {
	t.Helper()
	n, err := g.TargetSize()
	if err != nil {
		t.Fatalf("NodeGroupTargetSize(%s): CA read error %v; expected a size", g.Id(), err)
	}
	return n
}

func expectTarget(t *testing.T, g cloudprovider.NodeGroup, want int, why string) {
	t.Helper()
	if n := targetSize(t, g); n != want {
		t.Errorf("NodeGroupTargetSize(%s) %s: CA read %d; expected %d", g.Id(), why, n, want)
	}
}

func nodes(t *testing.T, g cloudprovider.NodeGroup) []cloudprovider.Instance {
	t.Helper()
	in, err := g.Nodes()
	if err != nil {
		t.Fatalf("NodeGroupNodes(%s): CA read error %v; expected the instances", g.Id(), err)
	}
	return in
}

// eventually polls cond (which returns done and what it saw) until done or
// timeout, then fails with the last thing it saw.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
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

func describe(in []cloudprovider.Instance) string {
	parts := make([]string, 0, len(in))
	for _, x := range in {
		s := x.Id + " status=nil"
		if x.Status != nil {
			s = fmt.Sprintf("%s %s", x.Id, map[cloudprovider.InstanceState]string{
				cloudprovider.InstanceRunning: "running", cloudprovider.InstanceCreating: "creating", cloudprovider.InstanceDeleting: "deleting",
			}[x.Status.State])
			if ei := x.Status.ErrorInfo; ei != nil {
				s += fmt.Sprintf(" error{%v %q %q}", ei.ErrorClass, ei.ErrorCode, ei.ErrorMessage)
			}
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func uuidOf(providerID string) string { return strings.TrimPrefix(providerID, "cloudscale://") }

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

// options are the fields of CA's config.NodeGroupAutoscalingOptions that the
// externalgrpc protocol carries (in both wire shapes). The others (e.g. 1.36's
// MaxNodeStartupTime) have no field, so CA's client leaves them zero.
type options struct {
	ScaleDownUtilizationThreshold    float64
	ScaleDownGpuUtilizationThreshold float64
	ScaleDownUnneededTime            time.Duration
	ScaleDownUnreadyTime             time.Duration
	MaxNodeProvisionTime             time.Duration
	ZeroOrMaxNodeScaling             bool
	IgnoreDaemonSetsUtilization      bool
}

func carried(o config.NodeGroupAutoscalingOptions) options {
	return options{o.ScaleDownUtilizationThreshold, o.ScaleDownGpuUtilizationThreshold, o.ScaleDownUnneededTime,
		o.ScaleDownUnreadyTime, o.MaxNodeProvisionTime, o.ZeroOrMaxNodeScaling, o.IgnoreDaemonSetsUtilization}
}
