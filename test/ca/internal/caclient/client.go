package caclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	apiv1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"autoscaler-cloudscale/test/ca/internal/wire"
)

// DefaultGRPCTimeout is CA's per-call deadline when grpc_timeout is unset.
const DefaultGRPCTimeout = 5 * time.Second

// cloudConfig has the keys of CA's --cloud-config for externalgrpc
// (sigs.k8s.io/yaml reads the json tags).
type cloudConfig struct {
	Address     string           `json:"address"`
	Key         string           `json:"key"`
	Cert        string           `json:"cert"`
	Cacert      string           `json:"cacert"`
	GRPCTimeout *metav1.Duration `json:"grpc_timeout,omitempty"`
}

// Build reads a CA cloud-config file and dials the provider the way CA
// does: plaintext when `cert` is empty, otherwise TLS with the client
// certificate, `cacert` as the only roots and ServerName = host of `address`.
// Like CA's grpc.Dial it does not block; the first RPC connects.
func Build(cloudConfigPath string) (CloudProvider, error) {
	raw, err := os.ReadFile(cloudConfigPath)
	if err != nil {
		return nil, fmt.Errorf("could not open cloud provider configuration file %q: %v", cloudConfigPath, err)
	}
	var cfg cloudConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("can't parse YAML: %v", err)
	}
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("failed to parse address: %v", err)
	}
	var creds credentials.TransportCredentials
	if cfg.Cert == "" {
		creds = insecure.NewCredentials()
	} else {
		certPEM, err := os.ReadFile(cfg.Cert)
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(cfg.Key)
		if err != nil {
			return nil, err
		}
		caPEM, err := os.ReadFile(cfg.Cacert)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("failed to parse cert key pair: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("failed to parse ca")
		}
		creds = credentials.NewTLS(&tls.Config{ServerName: host, Certificates: []tls.Certificate{pair}, RootCAs: pool})
	}
	//lint:ignore SA1019 CA 1.36.1 uses grpc.Dial (passthrough resolver), not grpc.NewClient.
	conn, err := grpc.Dial(cfg.Address, grpc.WithTransportCredentials(creds)) //nolint:staticcheck
	if err != nil {
		return nil, fmt.Errorf("failed to dial server: %v", err)
	}
	timeout := DefaultGRPCTimeout
	if cfg.GRPCTimeout != nil {
		timeout = cfg.GRPCTimeout.Duration
	}
	return &provider{conn: conn, client: wire.NewCloudProviderClient(conn), timeout: timeout, forNode: map[string]NodeGroup{}}, nil
}

type provider struct {
	conn    *grpc.ClientConn
	client  wire.CloudProviderClient
	timeout time.Duration

	mu       sync.Mutex
	groups   []NodeGroup          // until Refresh
	forNode  map[string]NodeGroup // positive answers only, until Refresh
	gpuLabel *string              // after the first successful call
	gpuTypes map[string]struct{}  // after the first successful call
}

func (p *provider) Name() string {
	return "CA 1.36.1-equivalent client (grpc-go v1.81.1, k8s.io/api v0.36.2)"
}

func (p *provider) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), p.timeout)
}

func isUnimplemented(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unimplemented
}

func (p *provider) group(g *wire.NodeGroup) *nodeGroup {
	return &nodeGroup{id: g.GetId(), min: int(g.GetMinSize()), max: int(g.GetMaxSize()), debug: g.GetDebug(), client: p.client, timeout: p.timeout}
}

// NodeGroups: an RPC error is only logged by CA and yields no groups
// (externalgrpc_cloud_provider.go l.79-109); the list is cached until Refresh.
func (p *provider) NodeGroups() []NodeGroup {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.groups != nil {
		return p.groups
	}
	ctx, cancel := p.ctx()
	defer cancel()
	res, err := p.client.NodeGroups(ctx, &wire.NodeGroupsRequest{})
	if err != nil {
		return []NodeGroup{}
	}
	groups := make([]NodeGroup, 0, len(res.GetNodeGroups()))
	for _, g := range res.GetNodeGroups() {
		groups = append(groups, p.group(g))
	}
	p.groups = groups
	return groups
}

// ExternalNode is what CA sends for a node: providerID, name, labels and
// annotations, nothing else (l.432).
func ExternalNode(n *apiv1.Node) *wire.ExternalGrpcNode {
	return &wire.ExternalGrpcNode{ProviderID: n.Spec.ProviderID, Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}
}

// NodeGroupForNode: an empty id means "not autoscaled" and is not cached, so
// CA asks again every time (l.114-155); errors are passed to the caller.
func (p *provider) NodeGroupForNode(node *apiv1.Node) (NodeGroup, error) {
	key := node.Name + node.Spec.ProviderID
	p.mu.Lock()
	if g, ok := p.forNode[key]; ok {
		p.mu.Unlock()
		return g, nil
	}
	p.mu.Unlock()
	ctx, cancel := p.ctx()
	defer cancel()
	res, err := p.client.NodeGroupForNode(ctx, &wire.NodeGroupForNodeRequest{Node: ExternalNode(node)})
	if err != nil {
		return nil, err
	}
	if res.GetNodeGroup().GetId() == "" {
		return nil, nil
	}
	g := p.group(res.GetNodeGroup())
	p.mu.Lock()
	p.forNode[key] = g
	p.mu.Unlock()
	return g, nil
}

// GPULabel: an error yields "" and is retried next time; success is cached
// for the life of the process (l.251-270).
func (p *provider) GPULabel() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gpuLabel != nil {
		return *p.gpuLabel
	}
	ctx, cancel := p.ctx()
	defer cancel()
	res, err := p.client.GPULabel(ctx, &wire.GPULabelRequest{})
	if err != nil {
		return ""
	}
	l := res.GetLabel()
	p.gpuLabel = &l
	return l
}

// GetAvailableGPUTypes: only the keys are used; error yields nil (l.273-296).
func (p *provider) GetAvailableGPUTypes() map[string]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gpuTypes != nil {
		return p.gpuTypes
	}
	ctx, cancel := p.ctx()
	defer cancel()
	res, err := p.client.GetAvailableGPUTypes(ctx, &wire.GetAvailableGPUTypesRequest{})
	if err != nil {
		return nil
	}
	types := map[string]struct{}{}
	for k := range res.GetGpuTypes() {
		types[k] = struct{}{}
	}
	p.gpuTypes = types
	return types
}

func (p *provider) NodePrice(node *apiv1.Node, start, end time.Time) (float64, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	res, err := p.client.PricingNodePrice(ctx, &wire.PricingNodePriceRequest{
		Node:           ExternalNode(node),
		StartTimestamp: timestamppb.New(start),
		EndTimestamp:   timestamppb.New(end),
	})
	if err != nil {
		if isUnimplemented(err) {
			return 0, ErrNotImplemented
		}
		return 0, err
	}
	return res.GetPrice(), nil
}

func (p *provider) PodPrice(pod *apiv1.Pod, start, end time.Time) (float64, error) {
	podBytes, err := pod.Marshal()
	if err != nil {
		return 0, err
	}
	ctx, cancel := p.ctx()
	defer cancel()
	res, err := p.client.PricingPodPrice(ctx, &wire.PricingPodPriceRequest{
		PodBytes:       podBytes,
		StartTimestamp: timestamppb.New(start),
		EndTimestamp:   timestamppb.New(end),
	})
	if err != nil {
		if isUnimplemented(err) {
			return 0, ErrNotImplemented
		}
		return 0, err
	}
	return res.GetPrice(), nil
}

// Refresh clears both caches first, then calls the RPC; CA aborts its loop
// on an error (l.319-334).
func (p *provider) Refresh() error {
	p.mu.Lock()
	p.groups = nil
	p.forNode = map[string]NodeGroup{}
	p.mu.Unlock()
	ctx, cancel := p.ctx()
	defer cancel()
	_, err := p.client.Refresh(ctx, &wire.RefreshRequest{})
	return err
}

func (p *provider) Cleanup() error {
	ctx, cancel := p.ctx()
	defer cancel()
	_, err := p.client.Cleanup(ctx, &wire.CleanupRequest{})
	return err
}

type nodeGroup struct {
	id       string
	min, max int
	debug    string
	client   wire.CloudProviderClient
	timeout  time.Duration

	mu       sync.Mutex
	template **apiv1.Node // cached per NodeGroup object, also when nil
}

func (g *nodeGroup) Id() string    { return g.id }
func (g *nodeGroup) MinSize() int  { return g.min }
func (g *nodeGroup) MaxSize() int  { return g.max }
func (g *nodeGroup) Debug() string { return g.debug }

func (g *nodeGroup) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

func (g *nodeGroup) TargetSize() (int, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	res, err := g.client.NodeGroupTargetSize(ctx, &wire.NodeGroupTargetSizeRequest{Id: g.id})
	if err != nil {
		return 0, err
	}
	return int(res.GetTargetSize()), nil
}

func (g *nodeGroup) IncreaseSize(delta int) error {
	ctx, cancel := g.ctx()
	defer cancel()
	_, err := g.client.NodeGroupIncreaseSize(ctx, &wire.NodeGroupIncreaseSizeRequest{Id: g.id, Delta: int32(delta)})
	return err
}

func (g *nodeGroup) DeleteNodes(nodes []*apiv1.Node) error {
	pb := make([]*wire.ExternalGrpcNode, 0, len(nodes))
	for _, n := range nodes {
		pb = append(pb, ExternalNode(n))
	}
	ctx, cancel := g.ctx()
	defer cancel()
	_, err := g.client.NodeGroupDeleteNodes(ctx, &wire.NodeGroupDeleteNodesRequest{Id: g.id, Nodes: pb})
	return err
}

func (g *nodeGroup) DecreaseTargetSize(delta int) error {
	ctx, cancel := g.ctx()
	defer cancel()
	_, err := g.client.NodeGroupDecreaseTargetSize(ctx, &wire.NodeGroupDecreaseTargetSizeRequest{Id: g.id, Delta: int32(delta)})
	return err
}

// Nodes: an unspecified state leaves Status nil (and drops any error info);
// ErrorInfo is set only when errorCode is non-empty (node_group l.164-195).
func (g *nodeGroup) Nodes() ([]Instance, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	res, err := g.client.NodeGroupNodes(ctx, &wire.NodeGroupNodesRequest{Id: g.id})
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(res.GetInstances()))
	for _, pi := range res.GetInstances() {
		in := Instance{Id: pi.GetId()}
		st := pi.GetStatus()
		if st.GetInstanceState() != wire.InstanceStatus_unspecified {
			in.HasStatus = true
			in.State = int(st.GetInstanceState())
			if ei := st.GetErrorInfo(); ei.GetErrorCode() != "" {
				in.HasError = true
				in.ErrorClass = int(ei.GetInstanceErrorClass())
				in.ErrorCode = ei.GetErrorCode()
				in.ErrorMessage = ei.GetErrorMessage()
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// RawTemplateNode: UNIMPLEMENTED -> ErrNotImplemented; a response without
// nodeBytes gives (nil, nil) and is cached (node_group l.209-245).
func (g *nodeGroup) RawTemplateNode() (*apiv1.Node, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.template != nil {
		return *g.template, nil
	}
	ctx, cancel := g.ctx()
	defer cancel()
	res, err := g.client.NodeGroupTemplateNodeInfo(ctx, &wire.NodeGroupTemplateNodeInfoRequest{Id: g.id})
	if err != nil {
		if isUnimplemented(err) {
			return nil, ErrNotImplemented
		}
		return nil, err
	}
	var node *apiv1.Node
	if b := res.GetNodeBytes(); b != nil {
		node = &apiv1.Node{}
		if err := node.Unmarshal(b); err != nil {
			return nil, err
		}
	}
	g.template = &node
	return node, nil
}

func (g *nodeGroup) TemplateNode() (*apiv1.Node, error) {
	raw, err := g.RawTemplateNode()
	if err != nil || raw == nil {
		return raw, err
	}
	return Sanitize(raw, g.id), nil
}

// GetOptions: UNIMPLEMENTED -> ErrNotImplemented (CA then uses its
// defaults); a response without options -> nil, nil; a missing duration is
// read as 0 (node_group l.275-329).
func (g *nodeGroup) GetOptions(d Options) (*Options, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	res, err := g.client.NodeGroupGetOptions(ctx, &wire.NodeGroupAutoscalingOptionsRequest{
		Id: g.id,
		Defaults: &wire.NodeGroupAutoscalingOptions{
			ScaleDownUtilizationThreshold:    d.ScaleDownUtilizationThreshold,
			ScaleDownGpuUtilizationThreshold: d.ScaleDownGpuUtilizationThreshold,
			ScaleDownUnneededDuration:        durationpb.New(d.ScaleDownUnneededTime),
			ScaleDownUnreadyDuration:         durationpb.New(d.ScaleDownUnreadyTime),
			MaxNodeProvisionDuration:         durationpb.New(d.MaxNodeProvisionTime),
			ZeroOrMaxNodeScaling:             d.ZeroOrMaxNodeScaling,
			IgnoreDaemonSetsUtilization:      d.IgnoreDaemonSetsUtilization,
		},
	})
	if err != nil {
		if isUnimplemented(err) {
			return nil, ErrNotImplemented
		}
		return nil, err
	}
	o := res.GetNodeGroupAutoscalingOptions()
	if o == nil {
		return nil, nil
	}
	dur := func(x *durationpb.Duration) time.Duration {
		if x == nil {
			return 0
		}
		return x.AsDuration()
	}
	return &Options{
		ScaleDownUtilizationThreshold:    o.GetScaleDownUtilizationThreshold(),
		ScaleDownGpuUtilizationThreshold: o.GetScaleDownGpuUtilizationThreshold(),
		ScaleDownUnneededTime:            dur(o.GetScaleDownUnneededDuration()),
		ScaleDownUnreadyTime:             dur(o.GetScaleDownUnreadyDuration()),
		MaxNodeProvisionTime:             dur(o.GetMaxNodeProvisionDuration()),
		ZeroOrMaxNodeScaling:             o.GetZeroOrMaxNodeScaling(),
		IgnoreDaemonSetsUtilization:      o.GetIgnoreDaemonSetsUtilization(),
	}, nil
}
