package legacy

// A stand-in for Cluster Autoscaler 1.34.1's externalgrpc client, written for
// this harness from reading CA's client at tag cluster-autoscaler-1.34.1 (no
// code copied; the Go module proxy here refuses k8s.io/autoscaler/
// cluster-autoscaler). Same libraries at CA 1.34.1's versions: grpc-go
// v1.72.1, k8s.io/api and apimachinery v0.34.1 (the last k8s types that old
// CAs embed in their protos). Only the calls this harness proves are here.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	apiv1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"autoscaler-cloudscale/test/ca-legacy/internal/wire"
)

var errNotImplemented = errors.New("not implemented")

type options struct {
	ScaleDownUtilizationThreshold    float64
	ScaleDownGpuUtilizationThreshold float64
	ScaleDownUnneededTime            time.Duration
	ScaleDownUnreadyTime             time.Duration
	MaxNodeProvisionTime             time.Duration
	ZeroOrMaxNodeScaling             bool
	IgnoreDaemonSetsUtilization      bool
}

type legacyClient struct {
	c       wire.CloudProviderClient
	timeout time.Duration
}

// dial reads CA's cloud-config and dials as CA <= 1.34.1 does (the same as 1.36.1).
func dial(cloudConfig string) (*legacyClient, error) {
	raw, err := os.ReadFile(cloudConfig)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Address     string           `json:"address"`
		Key         string           `json:"key"`
		Cert        string           `json:"cert"`
		Cacert      string           `json:"cacert"`
		GRPCTimeout *metav1.Duration `json:"grpc_timeout,omitempty"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, err
		}
		caPEM, err := os.ReadFile(cfg.Cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("failed to parse ca")
		}
		creds = credentials.NewTLS(&tls.Config{ServerName: host, Certificates: []tls.Certificate{pair}, RootCAs: pool})
	}
	conn, err := grpc.Dial(cfg.Address, grpc.WithTransportCredentials(creds)) //nolint:staticcheck // as CA dials
	if err != nil {
		return nil, err
	}
	timeout := 5 * time.Second
	if cfg.GRPCTimeout != nil {
		timeout = cfg.GRPCTimeout.Duration
	}
	return &legacyClient{c: wire.NewCloudProviderClient(conn), timeout: timeout}, nil
}

func (l *legacyClient) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), l.timeout)
}

func mapErr(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		return errNotImplemented
	}
	return err
}

func (l *legacyClient) nodeGroups() ([]*wire.NodeGroup, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	res, err := l.c.NodeGroups(ctx, &wire.NodeGroupsRequest{})
	return res.GetNodeGroups(), err
}

// templateNode: CA <= 1.34.1 reads only field 1 (nodeInfo), an embedded
// v1.Node; a response without it gives CA a nil template.
func (l *legacyClient) templateNode(id string) (*apiv1.Node, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	res, err := l.c.NodeGroupTemplateNodeInfo(ctx, &wire.NodeGroupTemplateNodeInfoRequest{Id: id})
	if err != nil {
		return nil, mapErr(err)
	}
	if res.GetNodeInfo() == nil {
		return nil, nil
	}
	n := &apiv1.Node{}
	if err := n.Unmarshal(res.GetNodeInfo()); err != nil {
		return nil, err
	}
	return n, nil
}

// getOptions: CA <= 1.34.1 dereferences the three meta.v1.Duration fields
// (3/4/5) without a nil check, so a response with options but without one of
// them panics CA; that is reported as an error here.
func (l *legacyClient) getOptions(id string, d options) (*options, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	res, err := l.c.NodeGroupGetOptions(ctx, &wire.NodeGroupAutoscalingOptionsRequest{
		Id: id,
		Defaults: &wire.NodeGroupAutoscalingOptions{
			ScaleDownUtilizationThreshold:    d.ScaleDownUtilizationThreshold,
			ScaleDownGpuUtilizationThreshold: d.ScaleDownGpuUtilizationThreshold,
			ScaleDownUnneededTime:            &wire.MetaDuration{Duration: int64(d.ScaleDownUnneededTime)},
			ScaleDownUnreadyTime:             &wire.MetaDuration{Duration: int64(d.ScaleDownUnreadyTime)},
			MaxNodeProvisionTime:             &wire.MetaDuration{Duration: int64(d.MaxNodeProvisionTime)},
			ZeroOrMaxNodeScaling:             d.ZeroOrMaxNodeScaling,
			IgnoreDaemonSetsUtilization:      d.IgnoreDaemonSetsUtilization,
		},
	})
	if err != nil {
		return nil, mapErr(err)
	}
	o := res.GetNodeGroupAutoscalingOptions()
	if o == nil {
		return nil, nil
	}
	for name, dur := range map[string]*wire.MetaDuration{"scaleDownUnneededTime(3)": o.GetScaleDownUnneededTime(), "scaleDownUnreadyTime(4)": o.GetScaleDownUnreadyTime(), "MaxNodeProvisionTime(5)": o.GetMaxNodeProvisionTime()} {
		if dur == nil {
			return nil, fmt.Errorf("options without %s: CA <= 1.34.1 dereferences it unconditionally (nil-pointer panic)", name)
		}
	}
	return &options{
		ScaleDownUtilizationThreshold:    o.GetScaleDownUtilizationThreshold(),
		ScaleDownGpuUtilizationThreshold: o.GetScaleDownGpuUtilizationThreshold(),
		ScaleDownUnneededTime:            time.Duration(o.GetScaleDownUnneededTime().GetDuration()),
		ScaleDownUnreadyTime:             time.Duration(o.GetScaleDownUnreadyTime().GetDuration()),
		MaxNodeProvisionTime:             time.Duration(o.GetMaxNodeProvisionTime().GetDuration()),
		ZeroOrMaxNodeScaling:             o.GetZeroOrMaxNodeScaling(),
		IgnoreDaemonSetsUtilization:      o.GetIgnoreDaemonSetsUtilization(),
	}, nil
}

// metaTime is how metav1.Time marshals: seconds and nanos.
func metaTime(t time.Time) *wire.MetaTime {
	return &wire.MetaTime{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

// nodePrice sends the times only in the legacy fields 2/3.
func (l *legacyClient) nodePrice(n *apiv1.Node, start, end time.Time) (float64, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	res, err := l.c.PricingNodePrice(ctx, &wire.PricingNodePriceRequest{
		Node:      &wire.ExternalGrpcNode{ProviderID: n.Spec.ProviderID, Name: n.Name, Labels: n.Labels, Annotations: n.Annotations},
		StartTime: metaTime(start),
		EndTime:   metaTime(end),
	})
	if err != nil {
		return 0, mapErr(err)
	}
	return res.GetPrice(), nil
}

// podPrice sends the Pod embedded in field 1 and the times in 2/3.
func (l *legacyClient) podPrice(p *apiv1.Pod, start, end time.Time) (float64, error) {
	b, err := p.Marshal()
	if err != nil {
		return 0, err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	res, err := l.c.PricingPodPrice(ctx, &wire.PricingPodPriceRequest{Pod: b, StartTime: metaTime(start), EndTime: metaTime(end)})
	if err != nil {
		return 0, mapErr(err)
	}
	return res.GetPrice(), nil
}
