package bench

// The Go baseline: the fastest answer a provider could give with CA's own
// stack. grpc-go, the same proto, the same TLS (mutual, client certificate
// required, ALPN h2), every RPC answered from maps and messages built once at
// start from the data the benchmark hands over (the provider's own groups,
// the seeded servers, the provider's own template bytes). Its Refresh does
// what any provider's Refresh must do and no more: GET the tag-filtered list
// from the simulator, decode the fields a provider uses and index them (the
// answers stay those built at start: the benchmark does not change the
// servers while it times lookups). It runs as a separate process (this test
// binary re-executed with BENCH_ROLE=baseline), like the provider.
//
// The CA-at-scale scenario (test/e2e/cascale_test.go) starts it the same way
// but hands over no data file: with BENCH_BASELINE_FROM (the cloud-config of a
// running provider) it asks that provider for its groups, templates and GPU
// label, and lists the servers from the simulator once, so that it answers the
// real Cluster Autoscaler with the same groups and nodes. With
// BENCH_BASELINE_STATS_LISTEN it counts the calls it served by method and
// shows the counts as JSON at GET /calls there.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	wire "k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc/protos"
)

// baselineData is what the benchmark writes for the baseline to load.
type baselineData struct {
	Groups    []baselineGroup   `json:"groups"`
	Servers   []seededServer    `json:"servers"`
	Templates map[string][]byte `json:"templates"` // group id -> nodeBytes as the provider answered them
	GPULabel  string            `json:"gpuLabel"`
}

type baselineGroup struct {
	ID    string `json:"id"`
	Min   int32  `json:"min"`
	Max   int32  `json:"max"`
	Debug string `json:"debug"`
}

// seededServer is one server the benchmark put into the simulator.
type seededServer struct {
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Group string `json:"group"` // "" for a foreign server
}

const providerIDPrefix = "cloudscale://"

// listedServer is what any provider needs of a server in the API's list.
type listedServer struct {
	UUID      string            `json:"uuid"`
	Name      string            `json:"name"`
	Status    string            `json:"status"`
	CreatedAt string            `json:"created_at"`
	Tags      map[string]string `json:"tags"`
}

type baselineServer struct {
	wire.UnimplementedCloudProviderServer
	groups    *wire.NodeGroupsResponse
	byID      map[string]*wire.NodeGroupForNodeResponse // group id -> answer
	byUUID    map[string]*wire.NodeGroupForNodeResponse
	byName    map[string]*wire.NodeGroupForNodeResponse
	none      *wire.NodeGroupForNodeResponse
	max       map[string]int32
	target    map[string]*atomic.Int32
	members   map[string]map[string]bool // group -> providerIDs and names
	nodes     map[string]*wire.NodeGroupNodesResponse
	templates map[string]*wire.NodeGroupTemplateNodeInfoResponse
	gpuLabel  string
	listURL   string // BENCH_BASELINE_LIST_URL: the simulator's tag-filtered list ("" = Refresh does nothing)
	token     string
}

func newBaselineServer(d *baselineData) *baselineServer {
	b := &baselineServer{
		groups:    &wire.NodeGroupsResponse{},
		byID:      map[string]*wire.NodeGroupForNodeResponse{},
		byUUID:    map[string]*wire.NodeGroupForNodeResponse{},
		byName:    map[string]*wire.NodeGroupForNodeResponse{},
		none:      &wire.NodeGroupForNodeResponse{NodeGroup: &wire.NodeGroup{}},
		max:       map[string]int32{},
		target:    map[string]*atomic.Int32{},
		members:   map[string]map[string]bool{},
		nodes:     map[string]*wire.NodeGroupNodesResponse{},
		templates: map[string]*wire.NodeGroupTemplateNodeInfoResponse{},
		gpuLabel:  d.GPULabel,
		listURL:   os.Getenv("BENCH_BASELINE_LIST_URL"),
		token:     os.Getenv("BENCH_BASELINE_TOKEN"),
	}
	for _, g := range d.Groups {
		ng := &wire.NodeGroup{Id: g.ID, MinSize: g.Min, MaxSize: g.Max, Debug: g.Debug}
		b.groups.NodeGroups = append(b.groups.NodeGroups, ng)
		b.byID[g.ID] = &wire.NodeGroupForNodeResponse{NodeGroup: ng}
		b.max[g.ID] = g.Max
		b.target[g.ID] = &atomic.Int32{}
		b.members[g.ID] = map[string]bool{}
		b.nodes[g.ID] = &wire.NodeGroupNodesResponse{}
		b.templates[g.ID] = &wire.NodeGroupTemplateNodeInfoResponse{NodeBytes: d.Templates[g.ID]}
	}
	for _, s := range d.Servers {
		answer, ok := b.byID[s.Group]
		if !ok {
			continue // foreign
		}
		b.byUUID[s.UUID] = answer
		b.byName[s.Name] = answer
		b.target[s.Group].Add(1)
		b.members[s.Group][providerIDPrefix+s.UUID] = true
		b.members[s.Group][s.Name] = true
		b.nodes[s.Group].Instances = append(b.nodes[s.Group].Instances, &wire.Instance{
			Id:     providerIDPrefix + s.UUID,
			Status: &wire.InstanceStatus{InstanceState: wire.InstanceStatus_instanceRunning},
		})
	}
	return b
}

func (b *baselineServer) group(id string) error {
	if _, ok := b.byID[id]; !ok {
		return status.Errorf(codes.NotFound, "node group %q does not exist", id)
	}
	return nil
}

func (b *baselineServer) NodeGroups(context.Context, *wire.NodeGroupsRequest) (*wire.NodeGroupsResponse, error) {
	return b.groups, nil
}

func (b *baselineServer) NodeGroupForNode(_ context.Context, req *wire.NodeGroupForNodeRequest) (*wire.NodeGroupForNodeResponse, error) {
	n := req.GetNode()
	if pid := n.GetProviderID(); pid != "" {
		if a, ok := b.byUUID[strings.ToLower(strings.TrimPrefix(pid, providerIDPrefix))]; ok && strings.HasPrefix(pid, providerIDPrefix) {
			return a, nil
		}
		return b.none, nil
	}
	if a, ok := b.byName[n.GetName()]; ok {
		return a, nil
	}
	return b.none, nil
}

func (b *baselineServer) PricingNodePrice(_ context.Context, req *wire.PricingNodePriceRequest) (*wire.PricingNodePriceResponse, error) {
	hours := req.GetEndTimestamp().AsTime().Sub(req.GetStartTimestamp().AsTime()).Hours()
	return &wire.PricingNodePriceResponse{Price: 0.1 * hours}, nil
}

func (b *baselineServer) PricingPodPrice(_ context.Context, req *wire.PricingPodPriceRequest) (*wire.PricingPodPriceResponse, error) {
	hours := req.GetEndTimestamp().AsTime().Sub(req.GetStartTimestamp().AsTime()).Hours()
	return &wire.PricingPodPriceResponse{Price: 0.01 * hours}, nil
}

func (b *baselineServer) GPULabel(context.Context, *wire.GPULabelRequest) (*wire.GPULabelResponse, error) {
	return &wire.GPULabelResponse{Label: b.gpuLabel}, nil
}

func (b *baselineServer) GetAvailableGPUTypes(context.Context, *wire.GetAvailableGPUTypesRequest) (*wire.GetAvailableGPUTypesResponse, error) {
	return &wire.GetAvailableGPUTypesResponse{}, nil
}

func (b *baselineServer) Cleanup(context.Context, *wire.CleanupRequest) (*wire.CleanupResponse, error) {
	return &wire.CleanupResponse{}, nil
}

func (b *baselineServer) Refresh(ctx context.Context, _ *wire.RefreshRequest) (*wire.RefreshResponse, error) {
	if b.listURL == "" {
		return &wire.RefreshResponse{}, nil
	}
	req, err := http.NewRequestWithContext(ctx, "GET", b.listURL, nil)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "listing servers: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		return nil, status.Errorf(codes.Unavailable, "listing servers: HTTP %d, %v", res.StatusCode, err)
	}
	var list []listedServer
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, status.Errorf(codes.Unavailable, "decoding the list: %v", err)
	}
	byUUID, byName, perGroup := make(map[string]string, len(list)), make(map[string]string, len(list)), map[string]int{}
	for _, s := range list {
		g := s.Tags["autoscaler-cloudscale-group"]
		byUUID[s.UUID], byName[s.Name] = g, g
		perGroup[g]++
	}
	_, _, _ = byUUID, byName, perGroup
	return &wire.RefreshResponse{}, nil
}

func (b *baselineServer) NodeGroupTargetSize(_ context.Context, req *wire.NodeGroupTargetSizeRequest) (*wire.NodeGroupTargetSizeResponse, error) {
	if err := b.group(req.GetId()); err != nil {
		return nil, err
	}
	return &wire.NodeGroupTargetSizeResponse{TargetSize: b.target[req.GetId()].Load()}, nil
}

func (b *baselineServer) NodeGroupIncreaseSize(_ context.Context, req *wire.NodeGroupIncreaseSizeRequest) (*wire.NodeGroupIncreaseSizeResponse, error) {
	if err := b.group(req.GetId()); err != nil {
		return nil, err
	}
	if req.GetDelta() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "delta must be positive, got %d", req.GetDelta())
	}
	t := b.target[req.GetId()]
	for {
		cur := t.Load()
		if cur+req.GetDelta() > b.max[req.GetId()] {
			return nil, status.Errorf(codes.OutOfRange, "above max size %d", b.max[req.GetId()])
		}
		if t.CompareAndSwap(cur, cur+req.GetDelta()) {
			return &wire.NodeGroupIncreaseSizeResponse{}, nil
		}
	}
}

func (b *baselineServer) NodeGroupDeleteNodes(_ context.Context, req *wire.NodeGroupDeleteNodesRequest) (*wire.NodeGroupDeleteNodesResponse, error) {
	if err := b.group(req.GetId()); err != nil {
		return nil, err
	}
	for _, n := range req.GetNodes() {
		if !b.members[req.GetId()][n.GetProviderID()] && !b.members[req.GetId()][n.GetName()] {
			return nil, status.Errorf(codes.InvalidArgument, "node %q is not in node group %q", n.GetName(), req.GetId())
		}
	}
	b.target[req.GetId()].Add(-int32(len(req.GetNodes())))
	return &wire.NodeGroupDeleteNodesResponse{}, nil
}

func (b *baselineServer) NodeGroupDecreaseTargetSize(_ context.Context, req *wire.NodeGroupDecreaseTargetSizeRequest) (*wire.NodeGroupDecreaseTargetSizeResponse, error) {
	if err := b.group(req.GetId()); err != nil {
		return nil, err
	}
	if req.GetDelta() >= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "delta must be negative, got %d", req.GetDelta())
	}
	b.target[req.GetId()].Add(req.GetDelta())
	return &wire.NodeGroupDecreaseTargetSizeResponse{}, nil
}

func (b *baselineServer) NodeGroupNodes(_ context.Context, req *wire.NodeGroupNodesRequest) (*wire.NodeGroupNodesResponse, error) {
	if err := b.group(req.GetId()); err != nil {
		return nil, err
	}
	return b.nodes[req.GetId()], nil
}

func (b *baselineServer) NodeGroupTemplateNodeInfo(_ context.Context, req *wire.NodeGroupTemplateNodeInfoRequest) (*wire.NodeGroupTemplateNodeInfoResponse, error) {
	if err := b.group(req.GetId()); err != nil {
		return nil, err
	}
	return b.templates[req.GetId()], nil
}

// runBaseline is the baseline process's main: BENCH_BASELINE_DATA (JSON),
// BENCH_BASELINE_LISTEN, BENCH_TLS_CERT/KEY/CLIENT_CA. It prints
// "baseline: serving on ADDR" when ready and exits on SIGTERM.
func runBaseline() int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "baseline: "+format+"\n", a...)
		return 1
	}
	var d baselineData
	if from := os.Getenv("BENCH_BASELINE_FROM"); from != "" && os.Getenv("BENCH_BASELINE_DATA") == "" {
		got, err := baselineDataFrom(from, os.Getenv("BENCH_BASELINE_LIST_URL"), os.Getenv("BENCH_BASELINE_TOKEN"))
		if err != nil {
			return fail("data from the provider: %v", err)
		}
		d = *got
	} else {
		raw, err := os.ReadFile(os.Getenv("BENCH_BASELINE_DATA"))
		if err != nil {
			return fail("reading data: %v", err)
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return fail("parsing data: %v", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(os.Getenv("BENCH_TLS_CERT"), os.Getenv("BENCH_TLS_KEY"))
	if err != nil {
		return fail("server certificate: %v", err)
	}
	caPEM, err := os.ReadFile(os.Getenv("BENCH_TLS_CLIENT_CA"))
	if err != nil {
		return fail("client CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fail("client CA: no certificate in %s", os.Getenv("BENCH_TLS_CLIENT_CA"))
	}
	// grpc-go's credentials.NewTLS adds ALPN "h2" and refuses a peer without it.
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	lis, err := net.Listen("tcp", os.Getenv("BENCH_BASELINE_LISTEN"))
	if err != nil {
		return fail("listen: %v", err)
	}
	opts := []grpc.ServerOption{grpc.Creds(creds), grpc.MaxRecvMsgSize(4 << 20), grpc.MaxSendMsgSize(4 << 20)}
	if addr := os.Getenv("BENCH_BASELINE_STATS_LISTEN"); addr != "" {
		calls := &callCounts{byMethod: map[string]int64{}}
		opts = append(opts, grpc.UnaryInterceptor(calls.interceptor))
		stats, err := net.Listen("tcp", addr)
		if err != nil {
			return fail("stats listen: %v", err)
		}
		go func() { _ = http.Serve(stats, calls) }()
	}
	srv := grpc.NewServer(opts...)
	wire.RegisterCloudProviderServer(srv, newBaselineServer(&d))
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.GracefulStop()
	}()
	fmt.Printf("baseline: serving on %s (%d groups, %d servers)\n", lis.Addr(), len(d.Groups), len(d.Servers))
	if err := srv.Serve(lis); err != nil {
		return fail("serve: %v", err)
	}
	return 0
}

// baselineDataFrom builds the baseline's data from a running provider (its
// groups, template bytes and GPU label, over the cloud-config's mutual TLS) and
// from one list of the servers in the simulator (listURL, tag-filtered).
func baselineDataFrom(cloudConfigPath, listURL, token string) (*baselineData, error) {
	conn, cfg, err := dialAsCA(cloudConfigPath)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := wire.NewCloudProviderClient(conn)
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), cfg.Timeout)
	}
	d := &baselineData{Templates: map[string][]byte{}}
	ctx, cancel := call()
	ng, err := c.NodeGroups(ctx, &wire.NodeGroupsRequest{}, grpc.WaitForReady(true))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("NodeGroups: %v", err)
	}
	for _, g := range ng.GetNodeGroups() {
		d.Groups = append(d.Groups, baselineGroup{ID: g.GetId(), Min: g.GetMinSize(), Max: g.GetMaxSize(), Debug: g.GetDebug()})
		ctx, cancel := call()
		tpl, err := c.NodeGroupTemplateNodeInfo(ctx, &wire.NodeGroupTemplateNodeInfoRequest{Id: g.GetId()})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("NodeGroupTemplateNodeInfo(%s): %v", g.GetId(), err)
		}
		d.Templates[g.GetId()] = tpl.GetNodeBytes()
	}
	ctx, cancel = call()
	if l, err := c.GPULabel(ctx, &wire.GPULabelRequest{}); err == nil {
		d.GPULabel = l.GetLabel()
	}
	cancel()
	req, err := http.NewRequest("GET", listURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("listing servers: %v", err)
	}
	defer res.Body.Close()
	var list []listedServer
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil || res.StatusCode != 200 {
		return nil, fmt.Errorf("listing servers: HTTP %d, %v", res.StatusCode, err)
	}
	for _, s := range list {
		d.Servers = append(d.Servers, seededServer{UUID: s.UUID, Name: s.Name, Group: s.Tags["autoscaler-cloudscale-group"]})
	}
	return d, nil
}

// callCounts counts the calls the baseline served, by method (the last element
// of the full method name), and serves them as JSON.
type callCounts struct {
	mu       sync.Mutex
	byMethod map[string]int64
}

func (c *callCounts) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	name := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	c.mu.Lock()
	c.byMethod[name]++
	c.mu.Unlock()
	return handler(ctx, req)
}

func (c *callCounts) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	raw, _ := json.Marshal(c.byMethod)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}
