// Package caclient is the harness's stand-in for Cluster Autoscaler 1.36.1's
// externalgrpc client (k8s.io/autoscaler/cluster-autoscaler/cloudprovider/
// externalgrpc). The Go module proxy reachable here refuses every version of
// k8s.io/autoscaler/cluster-autoscaler (HTTP 403), so CI cannot build CA's own
// package. This one is written for the harness from reading CA's client at tag
// cluster-autoscaler-1.36.1 (no code copied) and uses the same libraries at
// the same versions: grpc-go v1.81.1 (dial, TLS with ServerName = host of
// address, ALPN h2 enforcement), k8s.io/api v0.36.2 (Node/Pod protobuf
// decoding and encoding), sigs.k8s.io/yaml and metav1.Duration for the
// cloud-config. Where CA behaves in a way a provider must know about, the
// comment names the line of CA's file it mirrors.
//
// The interfaces below are the subset of cloudprovider.CloudProvider and
// cloudprovider.NodeGroup that CA's core uses, with CA's types reduced to
// what the conformance tests assert on, so that the same tests can drive CA's
// real package where it can be built (see test/ca/README.md).
package caclient

import (
	"errors"
	"time"

	apiv1 "k8s.io/api/core/v1"
)

// ErrNotImplemented is what CA's cloudprovider.ErrNotImplemented means here:
// the provider answered gRPC UNIMPLEMENTED (only for TemplateNodeInfo,
// GetOptions, NodePrice and PodPrice).
var ErrNotImplemented = errors.New("not implemented")

// CloudProvider is what CA's core calls on the provider.
type CloudProvider interface {
	// Name says which client this is, for failure messages.
	Name() string
	NodeGroups() []NodeGroup
	NodeGroupForNode(node *apiv1.Node) (NodeGroup, error)
	GPULabel() string
	GetAvailableGPUTypes() map[string]struct{}
	NodePrice(node *apiv1.Node, start, end time.Time) (float64, error)
	PodPrice(pod *apiv1.Pod, start, end time.Time) (float64, error)
	Refresh() error
	Cleanup() error
}

// NodeGroup is what CA's core calls on one node group.
type NodeGroup interface {
	Id() string
	MinSize() int
	MaxSize() int
	Debug() string
	TargetSize() (int, error)
	IncreaseSize(delta int) error
	DeleteNodes(nodes []*apiv1.Node) error
	DecreaseTargetSize(delta int) error
	Nodes() ([]Instance, error)
	// TemplateNode is TemplateNodeInfo() followed by CA's sanitising of the
	// template (simulator.SanitizedTemplateNodeInfoFromNodeGroup); nil, nil
	// when the provider answered without a node.
	TemplateNode() (*apiv1.Node, error)
	// RawTemplateNode is the node as decoded, before sanitising.
	RawTemplateNode() (*apiv1.Node, error)
	GetOptions(defaults Options) (*Options, error)
}

// InstanceState values are CA's cloudprovider.InstanceState.
const (
	InstanceRunning  = 1
	InstanceCreating = 2
	InstanceDeleting = 3
)

// Error classes are CA's cloudprovider.InstanceErrorClass.
const (
	OutOfResourcesErrorClass = 1
	OtherErrorClass          = 99
)

// Instance is CA's cloudprovider.Instance as CA's client fills it.
type Instance struct {
	Id string
	// HasStatus is false when CA leaves Status nil (state unspecified).
	HasStatus bool
	State     int
	// HasError is true when CA sets Status.ErrorInfo (errorCode non-empty).
	HasError     bool
	ErrorClass   int
	ErrorCode    string
	ErrorMessage string
}

// Options is CA's config.NodeGroupAutoscalingOptions, restricted to the
// fields the externalgrpc protocol carries.
type Options struct {
	ScaleDownUtilizationThreshold    float64
	ScaleDownGpuUtilizationThreshold float64
	ScaleDownUnneededTime            time.Duration
	ScaleDownUnreadyTime             time.Duration
	MaxNodeProvisionTime             time.Duration
	ZeroOrMaxNodeScaling             bool
	IgnoreDaemonSetsUtilization      bool
}
