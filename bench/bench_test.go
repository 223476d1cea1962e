package bench

// TestBench is the per-call benchmark: our compiled binary serving
// against the simulator, and the Go baseline, driven by one grpc-go client
// that dials as Cluster Autoscaler does. See README.md for the figures.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"autoscaler-cloudscale/test/ca/harness"
	wire "k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc/protos"
)

const (
	clusterName = "bench"
	clusterTag  = "autoscaler-cloudscale-cluster"
	groupTag    = "autoscaler-cloudscale-group"
	// Targets, as ratios to the Go baseline in the same run (bench/README.md).
	loopX         = 1.3 // the CA loop's wall time
	seqP50X       = 1.3 // sequential lookups, every RPC
	seqP99X       = 2.0
	c32P99X       = 2.0
	c32Throughput = 0.5 // at least half of the baseline's calls per second
	startX        = 2.0
	// Memory at 5,000 servers.
	rssSettledLimitMiB = 80
	rssPeakLimitMiB    = 100
	anonSettledMiB     = 32
	// Start, the list per Refresh and the scale-up.
	startLimit = 100 * time.Millisecond
	ackLimit   = time.Second
	createsX   = 1.2
)

type params struct {
	Mode              string        `json:"mode"`
	Servers           int           `json:"servers"`
	Groups            int           `json:"groups"`
	Foreign           int           `json:"foreign"`
	Rounds            int           `json:"rounds"`
	SeqPerRound       int           `json:"seqCallsPerRound"`
	Callers           int           `json:"concurrentCallers"`
	PerCallerPerRound int           `json:"callsPerCallerPerRound"`
	Warmup            int           `json:"warmupCalls"`
	LoopRounds        int           `json:"caLoopRounds"`
	Refreshes         int           `json:"refreshes"`
	StartTrials       int           `json:"startTrials"`
	StartTrialsFull   int           `json:"startTrialsAtScale"`
	ScaleDelta        int           `json:"scaleUpDelta"`
	PostLatency       time.Duration `json:"postLatencyNs"`
	CreateConcurrency int           `json:"createConcurrency"`
	BlockLimit        time.Duration `json:"blockLimitNs"`
	ClientWindow      int           `json:"clientWindowBytes,omitempty"` // experiment only (-client-window)
}

func paramsFor(smoke bool) params {
	p := params{
		Mode: "full", Servers: 5000, Groups: 50, Foreign: 500,
		Rounds: 4, SeqPerRound: 500, Callers: 32, PerCallerPerRound: 50, Warmup: 300, LoopRounds: 5,
		Refreshes: 100, StartTrials: 10, StartTrialsFull: 3,
		ScaleDelta: 50, PostLatency: 2 * time.Second, CreateConcurrency: 10, BlockLimit: 60 * time.Second,
	}
	if smoke {
		p = params{
			Mode: "smoke", Servers: 500, Groups: 50, Foreign: 50,
			Rounds: 2, SeqPerRound: 25, Callers: 32, PerCallerPerRound: 1, Warmup: 20, LoopRounds: 1,
			Refreshes: 20, StartTrials: 2, StartTrialsFull: 1,
			ScaleDelta: 50, PostLatency: 500 * time.Millisecond, CreateConcurrency: 10, BlockLimit: 10 * time.Second,
		}
	}
	if *flagServers > 0 {
		p.Servers = *flagServers
		p.Foreign = *flagServers / 10
	}
	if *flagRounds > 0 {
		p.Rounds = *flagRounds
	}
	p.ClientWindow = *flagWindow
	return p
}

// ------------------------------------------------------------------ results

type latency struct {
	Calls      int     `json:"calls"`
	Errors     int     `json:"errors"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	P90us      float64 `json:"p90_us"`
	P999us     float64 `json:"p999_us"`
	MeanUs     float64 `json:"mean_us"`
	MaxUs      float64 `json:"max_us"`
	PerSecond  float64 `json:"calls_per_second"`
	CPUusCall  float64 `json:"server_cpu_us_per_call"`
	Truncated  bool    `json:"truncated,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

type lookupResult struct {
	Key      string   `json:"key"`
	RPC      string   `json:"rpc"`
	Mode     string   `json:"mode"`
	Provider latency  `json:"provider"`
	Baseline latency  `json:"baseline"`
	P50X     float64  `json:"p50_ratio"`
	P99X     float64  `json:"p99_ratio"`
	TputX    float64  `json:"throughput_ratio"`
	Before   *latency `json:"before,omitempty"` // -before: the same figure of that binary, in the same rounds
	Met      bool     `json:"targets_met"`      // seq: p50 and p99; c32: throughput and p99
}

type target struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Value  string `json:"value"`
	Met    bool   `json:"met"`
}

type results struct {
	Machine   map[string]any   `json:"machine"`
	Commit    string           `json:"commit"`
	Binary    string           `json:"binary"`
	Params    params           `json:"params"`
	StartedAt string           `json:"startedAt"`
	Seconds   float64          `json:"durationSeconds"`
	Lookups   []lookupResult   `json:"lookups"`
	Before    string           `json:"before,omitempty"` // -before: that binary's version line
	Loop      map[string]any   `json:"caLoop"`
	Refresh   map[string]any   `json:"refresh"`
	ScaleUp   map[string]any   `json:"scaleUp"`
	Process   map[string]any   `json:"process"`
	Checks    []string         `json:"checkFailures"`
	Targets   []target         `json:"targets"`
	Figures   []map[string]any `json:"figures"`           // the summary line, in order
	CAScale   *caScaleFile     `json:"caScale,omitempty"` // -ca-scale: the real CA at 1,000 and 5,000 nodes
	figureMap map[string]string
}

func (r *results) fig(key string, v any) {
	var s string
	switch x := v.(type) {
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		s = fmt.Sprint(x)
	}
	r.Figures = append(r.Figures, map[string]any{"key": key, "value": v})
	r.figureMap[key] = s
}

// ------------------------------------------------------------------ the run

type env struct {
	t        *testing.T
	p        params
	bin      string
	dir      string
	certs    *harness.Certs
	sim      *harness.Sim
	cfgPath  string
	groups   []groupSpec
	seeded   []seededServer // ours then foreign, with UUIDs
	provider wire.CloudProviderClient
	provPID  int
	base     wire.CloudProviderClient
	basePID  int
	before   wire.CloudProviderClient // -before: the binary of the step before, served side by side
	befPID   int
	timeout  time.Duration
	res      *results
}

type groupSpec struct {
	Name, Flavor, Zone string
}

func TestBench(t *testing.T) {
	started := time.Now()
	p := paramsFor(*flagSmoke)
	e := &env{t: t, p: p, bin: harness.Binary(t), dir: t.TempDir(), res: &results{figureMap: map[string]string{}}}
	e.res.Params = p
	e.res.StartedAt = started.UTC().Format(time.RFC3339)
	e.res.Machine = machineInfo()
	e.res.Commit = gitCommit()
	if out, err := exec.Command(e.bin, "version").Output(); err == nil {
		e.res.Binary = strings.TrimSpace(string(out))
	}
	logf("bench: %s mode, %d servers in %d groups + %d foreign; %d cores; load average %s; %s",
		p.Mode, p.Servers, p.Groups, p.Foreign, runtime.NumCPU(), e.res.Machine["loadavgStart"], e.res.Binary)

	e.setup()
	if *flagStartOnly {
		e.startTimes()
		pr := e.res.Process
		line := fmt.Sprintf("bench: start_ms=%v start_go_ms=%v start_x=%.2f start_at_scale_ms=%v rss_idle_mib=%v", pr["startEmpty_p50_ms"], pr["baselineStart_ms"],
			pr["startEmpty_p50_ms"].(float64)/pr["baselineStart_ms"].(float64), pr["startAtScale_p50_ms"], pr["rssIdleMiB"])
		if bm, ok := pr["before"].(map[string]any); ok {
			line += fmt.Sprintf(" start_before_ms=%v", bm["startEmpty_p50_ms"])
		}
		summaryLine = line + " loadavg_end=" + strings.ReplaceAll(loadavg(), " ", "/")
		return
	}
	// Where the peak (VmHWM) is reached: read after each phase.
	peaks := [][2]any{}
	peak := func(phase string) {
		peaks = append(peaks, [2]any{phase, rssParts(e.provPID)["VmHWMMiB"]})
	}
	peak("start at scale")
	e.checkAnswers()
	e.lookups()
	peak("lookups")
	e.caLoop()
	peak("CA loops")
	e.refreshes()
	peak("Refreshes")
	e.startTimes()
	e.scaleUp()
	peak("scale-up")
	e.res.Process["peakAfterPhaseMiB"] = peaks

	e.res.Machine["loadavgEnd"] = loadavg()
	e.res.Seconds = round(time.Since(started).Seconds(), 1)
	e.evaluate()
	e.report()
}

func logf(format string, a ...any) { fmt.Printf(format+"\n", a...) }

func (e *env) setup() {
	t, p := e.t, e.p
	e.certs = harness.GenerateCerts(t, e.dir)
	e.sim = harness.StartSim(t, e.bin)

	// Groups and their servers: <cluster>-<group>-<8 random>, status running.
	flavors := []string{"flex-4-1", "flex-8-2", "flex-16-4", "plus-8-2", "plus-16-4"}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "clusterName: %s\ncreateConcurrency: %d\n", clusterName, p.CreateConcurrency)
	// No start-up grace: the benchmark's cloud has no killed predecessor whose requests could
	// still land, and the scale-up is timed right away (older binaries do not know the key).
	if e.configKnows("startupGrace: 0s") {
		cfg.WriteString("startupGrace: 0s\n")
	}
	cfg.WriteString("nodeGroups:\n")
	for i := 0; i < p.Groups; i++ {
		g := groupSpec{Name: fmt.Sprintf("pool-%02d", i+1), Flavor: flavors[i%len(flavors)], Zone: []string{"lpg1", "rma1"}[i%2]}
		e.groups = append(e.groups, g)
		fmt.Fprintf(&cfg, "  - name: %s\n    flavor: %s\n    image: debian-13\n    zone: %s\n    min: 0\n    max: 1000\n    labels: {pool: %s}\n", g.Name, g.Flavor, g.Zone, g.Name)
	}
	e.cfgPath = harness.WriteFile(t, e.dir, "provider.yaml", cfg.String())

	rng := rand.New(rand.NewPCG(6, 6))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	used := map[string]bool{}
	var seeds []map[string]any
	for i := 0; i < p.Servers; i++ {
		g := e.groups[i%p.Groups]
		var name string
		for name == "" || used[name] {
			b := make([]byte, 8)
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			name = fmt.Sprintf("%s-%s-%s", clusterName, g.Name, b)
		}
		used[name] = true
		e.seeded = append(e.seeded, seededServer{Name: name, Group: g.Name})
		seeds = append(seeds, map[string]any{"name": name, "flavor": g.Flavor, "image": "debian-13", "zone": g.Zone, "status": "running",
			"tags": map[string]string{clusterTag: clusterName, groupTag: g.Name}})
	}
	// Foreign: half another cluster's (same group names), half untagged (control plane, other tools).
	for i := 0; i < p.Foreign; i++ {
		name := fmt.Sprintf("other-pool-%02d-%08d", i%p.Groups+1, i)
		tags := map[string]string{clusterTag: "other", groupTag: fmt.Sprintf("pool-%02d", i%p.Groups+1)}
		if i%2 == 1 {
			name, tags = fmt.Sprintf("control-plane-%d", i), map[string]string{"role": "control-plane"}
		}
		e.seeded = append(e.seeded, seededServer{Name: name})
		seeds = append(seeds, map[string]any{"name": name, "flavor": "flex-8-2", "image": "debian-13", "zone": "lpg1", "status": "running", "tags": tags})
	}
	for off := 0; off < len(seeds); off += 1000 {
		end := min(off+1000, len(seeds))
		var out struct {
			UUIDs []string `json:"uuids"`
		}
		raw := e.sim.Control(t, "POST", "/_sim/servers", map[string]any{"servers": seeds[off:end]})
		if err := json.Unmarshal(raw, &out); err != nil || len(out.UUIDs) != end-off {
			t.Fatalf("seeding servers %d..%d: %v (%d uuids)", off, end, err, len(out.UUIDs))
		}
		for i, u := range out.UUIDs {
			e.seeded[off+i].UUID = u
		}
	}
	e.sim.Control(t, "POST", "/_sim/reset-faults", nil)
	e.sim.Control(t, "POST", "/_sim/counters/reset", nil)

	// The provider under test (the compiled binary, or from source under Bun's profiler).
	serveBin := e.bin
	if *flagCPUProf != "" {
		serveBin = e.profilerWrapper()
	}
	srv := harness.StartServe(t, serveBin, e.cfgPath, e.sim, e.certs)
	if *flagServeLog != "" {
		t.Cleanup(func() { _ = os.WriteFile(*flagServeLog, []byte(srv.Output()), 0o644) })
	}
	pid, err := childPID("serve", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	e.provPID = pid
	counters := e.counters()
	rssStart, _ := rssMiB(pid)
	e.res.Process = map[string]any{"rssAfterStartAtScaleMiB": round(rssStart, 1), "rssPartsAfterStartAtScale": rssParts(pid), "apiCallsAtStart": counters}
	logf("bench: provider up (pid %d, %s), RSS %.1f MiB after loading %d servers; API calls at start: %v", pid, srv.Addr, rssStart, p.Servers, counters)

	if *flagBefore != "" {
		before, err := filepath.Abs(*flagBefore)
		if err != nil {
			t.Fatal(err)
		}
		bsrv := harness.StartServe(t, before, e.cfgPath, e.sim, e.certs)
		if e.befPID, err = childPID("serve", bsrv.Addr); err != nil {
			t.Fatal(err)
		}
		bcc := harness.CloudConfig(t, e.dir, "cloud-config-before.yaml", bsrv.Addr, e.certs, "10s")
		bconn, _, err := dialAsCA(bcc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bconn.Close() })
		e.before = wire.NewCloudProviderClient(bconn)
		if out, err := exec.Command(before, "version").Output(); err == nil {
			e.res.Before = strings.TrimSpace(string(out)) + " (" + before + ")"
		}
		logf("bench: A/B: the -before binary serves too (pid %d, %s): %s", e.befPID, bsrv.Addr, e.res.Before)
	}

	cc := harness.CloudConfig(t, e.dir, "cloud-config.yaml", srv.Addr, e.certs, "10s")
	conn, cfg2, err := dialAsCA(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.timeout = cfg2.Timeout
	e.provider = wire.NewCloudProviderClient(conn)

	// The baseline gets what the provider holds: its groups, the servers, its templates.
	data := baselineData{Servers: e.seeded, Templates: map[string][]byte{}}
	ctx, cancel := e.ctx()
	ng, err := e.provider.NodeGroups(ctx, &wire.NodeGroupsRequest{})
	cancel()
	if err != nil {
		t.Fatalf("NodeGroups from the provider: %v", err)
	}
	for _, g := range ng.GetNodeGroups() {
		data.Groups = append(data.Groups, baselineGroup{ID: g.GetId(), Min: g.GetMinSize(), Max: g.GetMaxSize(), Debug: g.GetDebug()})
		ctx, cancel := e.ctx()
		tpl, err := e.provider.NodeGroupTemplateNodeInfo(ctx, &wire.NodeGroupTemplateNodeInfoRequest{Id: g.GetId()})
		cancel()
		if err != nil {
			t.Fatalf("NodeGroupTemplateNodeInfo(%s) from the provider: %v", g.GetId(), err)
		}
		data.Templates[g.GetId()] = tpl.GetNodeBytes()
	}
	ctx, cancel = e.ctx()
	if l, err := e.provider.GPULabel(ctx, &wire.GPULabelRequest{}); err == nil {
		data.GPULabel = l.GetLabel()
	}
	cancel()
	raw, _ := json.Marshal(data)
	dataPath := harness.WriteFile(t, e.dir, "baseline.json", string(raw))
	baseAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	ready := make(chan struct{})
	var once sync.Once
	self, _ := os.Executable()
	base := spawn(t, self, []string{"-test.run=^$"}, []string{
		"BENCH_ROLE=baseline", "BENCH_BASELINE_DATA=" + dataPath, "BENCH_BASELINE_LISTEN=" + baseAddr,
		"BENCH_BASELINE_LIST_URL=" + e.sim.API + "/servers?tag:" + clusterTag + "=" + clusterName, "BENCH_BASELINE_TOKEN=" + harness.Token,
		"BENCH_TLS_CERT=" + e.certs.ServerCert, "BENCH_TLS_KEY=" + e.certs.ServerKey, "BENCH_TLS_CLIENT_CA=" + e.certs.CA,
	}, func(line string) {
		if strings.HasPrefix(line, "baseline: serving on") {
			once.Do(func() { close(ready) })
		}
	})
	select {
	case <-ready:
	case <-base.done:
		t.Fatalf("baseline exited before it was ready:\n%s", base.Output())
	case <-time.After(20 * time.Second):
		t.Fatalf("baseline not ready in 20 s:\n%s", base.Output())
	}
	e.basePID = base.Pid()
	bcc := harness.CloudConfig(t, e.dir, "cloud-config-baseline.yaml", baseAddr, e.certs, "10s")
	bconn, _, err := dialAsCA(bcc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bconn.Close() })
	e.base = wire.NewCloudProviderClient(bconn)
	rssBase, _ := rssMiB(e.basePID)
	e.res.Process["baselineRssMiB"] = round(rssBase, 1)
	logf("bench: Go baseline up (pid %d, %s), RSS %.1f MiB", e.basePID, baseAddr, rssBase)
}

// configKnows reports whether the binary under test accepts this top-level
// configuration line (validate --offline on a minimal configuration).
func (e *env) configKnows(line string) bool {
	path := harness.WriteFile(e.t, e.dir, "probe.yaml", "clusterName: probe\n"+line+"\nnodeGroups:\n  - {name: a, flavor: flex-4-1, image: debian-13, min: 0, max: 1}\n")
	return exec.Command(e.bin, "validate", "--offline", "--config", path).Run() == nil
}

// profilerWrapper writes a script that runs the provider from source under
// Bun's CPU profiler, for -cpu-prof.
func (e *env) profilerWrapper() string {
	root := repoRoot()
	bun, err := exec.LookPath(*flagBun)
	if err != nil {
		e.t.Fatalf("-cpu-prof needs bun: %v", err)
	}
	dir, _ := filepath.Abs(*flagCPUProf)
	_ = os.MkdirAll(dir, 0o755)
	script := fmt.Sprintf("#!/bin/sh\nexec %q --cpu-prof --cpu-prof-md --cpu-prof-dir=%q %q \"$@\"\n", bun, dir, filepath.Join(root, "src/main.ts"))
	path := filepath.Join(e.dir, "serve-profiled.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		e.t.Fatal(err)
	}
	logf("bench: provider runs from source under Bun's profiler; profiles go to %s when it stops", dir)
	return path
}

func (e *env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.timeout)
}

func (e *env) counters() map[string]int {
	out := map[string]int{}
	_ = json.Unmarshal(e.sim.Control(e.t, "GET", "/_sim/counters", nil), &out)
	return out
}

func (e *env) ours() []seededServer    { return e.seeded[:e.p.Servers] }
func (e *env) foreign() []seededServer { return e.seeded[e.p.Servers:] }

// checkAnswers makes sure the provider's view is right before timing it:
// every group holds its servers, lookups find the right group, foreign
// servers are no one's.
func (e *env) checkAnswers() {
	var fails []string
	perGroup := map[string]int{}
	for _, s := range e.ours() {
		perGroup[s.Group]++
	}
	for _, g := range e.groups {
		ctx, cancel := e.ctx()
		ts, err := e.provider.NodeGroupTargetSize(ctx, &wire.NodeGroupTargetSizeRequest{Id: g.Name})
		cancel()
		if err != nil || int(ts.GetTargetSize()) != perGroup[g.Name] {
			fails = append(fails, fmt.Sprintf("NodeGroupTargetSize(%s) = %d, %v; expected %d", g.Name, ts.GetTargetSize(), err, perGroup[g.Name]))
		}
		ctx, cancel = e.ctx()
		nodes, err := e.provider.NodeGroupNodes(ctx, &wire.NodeGroupNodesRequest{Id: g.Name})
		cancel()
		if err != nil || len(nodes.GetInstances()) != perGroup[g.Name] {
			fails = append(fails, fmt.Sprintf("NodeGroupNodes(%s): %d instances, %v; expected %d", g.Name, len(nodes.GetInstances()), err, perGroup[g.Name]))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		s := e.seeded[rng.IntN(len(e.seeded))]
		for _, byName := range []bool{false, true} {
			n := &wire.ExternalGrpcNode{ProviderID: providerIDPrefix + s.UUID}
			if byName {
				n = &wire.ExternalGrpcNode{Name: s.Name}
			}
			ctx, cancel := e.ctx()
			r, err := e.provider.NodeGroupForNode(ctx, &wire.NodeGroupForNodeRequest{Node: n})
			cancel()
			if err != nil || r.GetNodeGroup().GetId() != s.Group {
				fails = append(fails, fmt.Sprintf("NodeGroupForNode(%s, byName=%v) = %q, %v; expected %q", s.Name, byName, r.GetNodeGroup().GetId(), err, s.Group))
			}
		}
	}
	if len(fails) > 20 {
		fails = append(fails[:20], fmt.Sprintf("... and %d more", len(fails)-20))
	}
	e.res.Checks = fails
	for _, f := range fails {
		e.t.Errorf("provider answer wrong: %s", f)
	}
	logf("bench: answers checked (%d groups, 400 lookups): %d wrong", len(e.groups), len(fails))
}

// ------------------------------------------------------------------ lookups

type rpc struct {
	key, name string
	call      func(c wire.CloudProviderClient, ctx context.Context, i int) error
}

func (e *env) rpcs() []rpc {
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 4096
	byID := make([]*wire.NodeGroupForNodeRequest, n)
	byName := make([]*wire.NodeGroupForNodeRequest, n)
	groupIDs := make([]string, n)
	for i := 0; i < n; i++ {
		// 9 in 10 are our nodes, 1 in 10 another cluster's or the control plane's: CA asks for every node.
		s := e.ours()[rng.IntN(len(e.ours()))]
		if f := e.foreign(); len(f) > 0 && rng.IntN(10) == 0 {
			s = f[rng.IntN(len(f))]
		}
		labels, annotations := nodeMeta(s)
		byID[i] = &wire.NodeGroupForNodeRequest{Node: &wire.ExternalGrpcNode{ProviderID: providerIDPrefix + s.UUID, Name: s.Name, Labels: labels, Annotations: annotations}}
		byName[i] = &wire.NodeGroupForNodeRequest{Node: &wire.ExternalGrpcNode{Name: s.Name, Labels: labels, Annotations: annotations}}
		groupIDs[i] = e.groups[rng.IntN(len(e.groups))].Name
	}
	return []rpc{
		{"fornode_id", "NodeGroupForNode (providerID)", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			_, err := c.NodeGroupForNode(ctx, byID[i%n])
			return err
		}},
		{"fornode_name", "NodeGroupForNode (name only)", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			_, err := c.NodeGroupForNode(ctx, byName[i%n])
			return err
		}},
		{"targetsize", "NodeGroupTargetSize", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			_, err := c.NodeGroupTargetSize(ctx, &wire.NodeGroupTargetSizeRequest{Id: groupIDs[i%n]})
			return err
		}},
		{"nodes", "NodeGroupNodes", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			_, err := c.NodeGroupNodes(ctx, &wire.NodeGroupNodesRequest{Id: groupIDs[i%n]})
			return err
		}},
		{"template", "NodeGroupTemplateNodeInfo", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			_, err := c.NodeGroupTemplateNodeInfo(ctx, &wire.NodeGroupTemplateNodeInfoRequest{Id: groupIDs[i%n]})
			return err
		}},
		{"nodegroups", "NodeGroups", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			_, err := c.NodeGroups(ctx, &wire.NodeGroupsRequest{})
			return err
		}},
		{"getoptions", "NodeGroupGetOptions (none)", func(c wire.CloudProviderClient, ctx context.Context, i int) error {
			return getOptions(c, ctx, groupIDs[i%n])
		}},
	}
}

// caDefaults is what CA 1.36 sends as the defaults in NodeGroupGetOptions (its flags' defaults).
var caDefaults = &wire.NodeGroupAutoscalingOptions{
	ScaleDownUtilizationThreshold: 0.5, ScaleDownGpuUtilizationThreshold: 0.5,
	ScaleDownUnneededDuration: durationpb.New(10 * time.Minute), ScaleDownUnreadyDuration: durationpb.New(20 * time.Minute),
	MaxNodeProvisionDuration: durationpb.New(15 * time.Minute),
}

// getOptions asks a group's options as CA does (twice per node and loop). The bench's groups have
// none: both servers answer UNIMPLEMENTED, which CA takes as "use my defaults"; anything else is an error.
func getOptions(c wire.CloudProviderClient, ctx context.Context, id string) error {
	_, err := c.NodeGroupGetOptions(ctx, &wire.NodeGroupAutoscalingOptionsRequest{Id: id, Defaults: caDefaults})
	if err == nil {
		return fmt.Errorf("NodeGroupGetOptions(%s): options answered for a group that has none", id)
	}
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	return err
}

// nodeMeta is what a registered node carries, as CA sends it in NodeGroupForNode.
func nodeMeta(s seededServer) (map[string]string, map[string]string) {
	labels := map[string]string{
		"kubernetes.io/hostname": s.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
		"node.kubernetes.io/instance-type": "flex-8-2", "topology.kubernetes.io/region": "lpg", "topology.kubernetes.io/zone": "lpg1",
	}
	if s.Group != "" {
		labels["autoscaler-cloudscale/node-group"] = s.Group
		labels["pool"] = s.Group
	} else {
		labels["node-role.kubernetes.io/control-plane"] = ""
	}
	annotations := map[string]string{
		"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true",
		"talos.dev/owned-labels": `["pool"]`,
	}
	return labels, annotations
}

type block struct {
	lat       []time.Duration
	errors    int
	firstErr  error
	wall      time.Duration
	cpu       float64
	truncated bool
}

func (b *block) add(o block) {
	b.lat = append(b.lat, o.lat...)
	b.errors += o.errors
	if b.firstErr == nil {
		b.firstErr = o.firstErr
	}
	b.wall += o.wall
	b.cpu += o.cpu
	b.truncated = b.truncated || o.truncated
}

func (b *block) summary() latency {
	s := sortDurations(b.lat)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	l := latency{Calls: len(s), Errors: b.errors, Truncated: b.truncated}
	if len(s) > 0 {
		l.P50us = round(us(pct(s, 0.50)), 1)
		l.P99us = round(us(pct(s, 0.99)), 1)
		l.P90us = round(us(pct(s, 0.90)), 1)
		l.P999us = round(us(pct(s, 0.999)), 1)
		l.MeanUs = round(us(sum/time.Duration(len(s))), 1)
		l.MaxUs = round(us(s[len(s)-1]), 1)
		l.CPUusCall = round(b.cpu*1e6/float64(len(s)), 1)
	}
	if b.wall > 0 {
		l.PerSecond = round(float64(len(s))/b.wall.Seconds(), 0)
	}
	if b.firstErr != nil {
		l.FirstError = b.firstErr.Error()
	}
	return l
}

// run makes callers × perCaller calls (callers = 1: sequential), each timed
// on its own, indices from offset; bounded by the block time limit.
func (e *env) run(c wire.CloudProviderClient, pid int, r rpc, callers, perCaller, offset int) block {
	var mu sync.Mutex
	out := block{}
	var wg sync.WaitGroup
	cpu0 := cpuSeconds(pid)
	start := time.Now()
	deadline := start.Add(e.p.BlockLimit)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			lat := make([]time.Duration, 0, perCaller)
			errs := 0
			var firstErr error
			truncated := false
			for i := 0; i < perCaller; i++ {
				if time.Now().After(deadline) {
					truncated = true
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
				t0 := time.Now()
				err := r.call(c, ctx, offset+g*perCaller+i)
				d := time.Since(t0)
				cancel()
				lat = append(lat, d)
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			mu.Lock()
			out.add(block{lat: lat, errors: errs, firstErr: firstErr, truncated: truncated})
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	out.wall = time.Since(start)
	out.cpu = cpuSeconds(pid) - cpu0
	return out
}

// side is one server the rounds time: the provider, the Go baseline, and with -before that binary.
type side struct {
	c   wire.CloudProviderClient
	pid int
}

func (e *env) sides() []side {
	sides := []side{{e.provider, e.provPID}, {e.base, e.basePID}}
	if e.before != nil {
		sides = append(sides, side{e.before, e.befPID})
	}
	return sides
}

// turn is the side that goes k-th in a round: the order turns by one every round, so that each side
// goes first equally often and drift hits every side alike (with two sides: A B, B A, A B, ...).
func turn(k, round, n int) int {
	return (k + round) % n
}

func (e *env) lookups() {
	p := e.p
	rpcs := e.rpcs()
	sides := e.sides()
	// Warm up every server on every RPC (JIT, connection windows, caches) before timing anything.
	for _, r := range rpcs {
		for _, sd := range sides {
			e.run(sd.c, sd.pid, r, 1, p.Warmup, 0)
			e.run(sd.c, sd.pid, r, p.Callers, max(1, p.Warmup/p.Callers), 0)
		}
	}
	logf("bench: warmed up (%d calls per RPC and server); timing %d interleaved rounds per figure", p.Warmup*2, p.Rounds)
	for _, mode := range []string{"seq", "c32"} {
		for _, r := range rpcs {
			blocks := make([]block, len(sides))
			for round := 0; round < p.Rounds; round++ {
				for k := range sides {
					i := turn(k, round, len(sides))
					var b block
					if mode == "seq" {
						b = e.run(sides[i].c, sides[i].pid, r, 1, p.SeqPerRound, round*p.SeqPerRound)
					} else {
						b = e.run(sides[i].c, sides[i].pid, r, p.Callers, p.PerCallerPerRound, round*p.Callers*p.PerCallerPerRound)
					}
					blocks[i].add(b)
				}
			}
			prov, base := blocks[0], blocks[1]
			lr := lookupResult{Key: r.key + "_" + mode, RPC: r.name, Mode: mode, Provider: prov.summary(), Baseline: base.summary()}
			if e.before != nil {
				b := blocks[2].summary()
				lr.Before = &b
				if b.Errors > 0 {
					e.t.Errorf("%s %s: %d errors from the -before binary (%s)", r.name, mode, b.Errors, b.FirstError)
				}
			}
			if lr.Baseline.P50us > 0 {
				lr.P50X = round(lr.Provider.P50us/lr.Baseline.P50us, 2)
				lr.P99X = round(lr.Provider.P99us/lr.Baseline.P99us, 2)
			}
			if lr.Baseline.PerSecond > 0 {
				lr.TputX = round(lr.Provider.PerSecond/lr.Baseline.PerSecond, 2)
			}
			if mode == "seq" {
				lr.Met = lr.P50X <= seqP50X && lr.P99X <= seqP99X
			} else {
				lr.Met = lr.TputX >= c32Throughput && lr.P99X <= c32P99X
			}
			lr.Met = lr.Met && lr.Provider.Errors == 0 && lr.P99X > 0
			if lr.Provider.Errors > 0 || lr.Baseline.Errors > 0 {
				e.t.Errorf("%s %s: %d provider errors (%s), %d baseline errors (%s)", r.name, mode, lr.Provider.Errors, lr.Provider.FirstError, lr.Baseline.Errors, lr.Baseline.FirstError)
			}
			e.res.Lookups = append(e.res.Lookups, lr)
			logf("bench: %-30s %-3s provider p50 %8.1f µs p99 %8.1f µs | Go %7.1f / %7.1f µs | x%.2f / x%.2f",
				r.name, mode, lr.Provider.P50us, lr.Provider.P99us, lr.Baseline.P50us, lr.Baseline.P99us, lr.P50X, lr.P99X)
			if lr.Before != nil {
				logf("bench: %-30s %-3s before   p50 %8.1f µs p99 %8.1f µs CPU/call %.0f µs, %.0f calls/s | provider CPU/call %.0f µs, %.0f calls/s",
					r.name, mode, lr.Before.P50us, lr.Before.P99us, lr.Before.CPUusCall, lr.Before.PerSecond, lr.Provider.CPUusCall, lr.Provider.PerSecond)
			}
		}
	}
	rss, _ := rssMiB(e.provPID)
	e.res.Process["rssAfterLookupsMiB"] = round(rss, 1)
}

// ------------------------------------------------------------------ refresh

func (e *env) refreshes() {
	t, p := e.t, e.p
	// Nothing in the simulator may add latency or faults to the lists.
	e.sim.Control(t, "POST", "/_sim/reset-faults", nil)
	var faults struct {
		Rules []any `json:"rules"`
	}
	_ = json.Unmarshal(e.sim.Control(t, "GET", "/_sim/faults", nil), &faults)
	if len(faults.Rules) != 0 {
		t.Fatalf("simulator still has %d fault rules", len(faults.Rules))
	}
	var lat []time.Duration
	listCalls := map[int]int{} // list calls per Refresh -> how many Refreshes
	otherCalls := 0
	rssAt := map[string]float64{}
	settled := map[int]float64{}
	settledAnon := map[int]float64{} // the anonymous part (heaps, stacks): RSS without the mapped executable
	var rssSeries []float64
	// -before: the same Refreshes against that binary, each right after the provider's, and its
	// memory sampled in the same windows.
	var befLat []time.Duration
	befSettled, befAnon := map[int]float64{}, map[int]float64{}
	befCPU0 := 0.0
	if e.before != nil {
		befCPU0 = cpuSeconds(e.befPID)
	}
	cpu0 := cpuSeconds(e.provPID)
	for i := 1; i <= p.Refreshes; i++ {
		e.sim.Control(t, "POST", "/_sim/counters/reset", nil)
		ctx, cancel := e.ctx()
		t0 := time.Now()
		_, err := e.provider.Refresh(ctx, &wire.RefreshRequest{})
		d := time.Since(t0)
		cancel()
		if err != nil {
			t.Errorf("Refresh %d: %v", i, err)
		}
		lat = append(lat, d)
		c := e.counters()
		listCalls[c["GET /v1/servers"]]++
		for k, v := range c {
			if k != "GET /v1/servers" {
				otherCalls += v
			}
		}
		if e.before != nil {
			ctx, cancel := e.ctx()
			t0 := time.Now()
			if _, err := e.before.Refresh(ctx, &wire.RefreshRequest{}); err != nil {
				t.Errorf("Refresh %d of the -before binary: %v", i, err)
			}
			befLat = append(befLat, time.Since(t0))
			cancel()
		}
		if i%10 == 0 || i == 1 {
			rss, _ := rssMiB(e.provPID)
			rssAt[strconv.Itoa(i)] = round(rss, 1)
			rssSeries = append(rssSeries, round(rss, 1))
		}
		if i%10 == 0 {
			// Right after a Refresh the parsed list's garbage is still there; settled = the least
			// RSS over the next 2 s (sampled every 100 ms).
			low, lowAnon := math.Inf(1), math.Inf(1)
			bLow, bAnon := math.Inf(1), math.Inf(1)
			for k := 0; k < 20; k++ {
				time.Sleep(100 * time.Millisecond)
				if parts := rssParts(e.provPID); parts["VmRSSMiB"] > 0 {
					low = math.Min(low, parts["VmRSSMiB"])
					lowAnon = math.Min(lowAnon, parts["RssAnonMiB"])
				}
				if e.before != nil {
					if parts := rssParts(e.befPID); parts["VmRSSMiB"] > 0 {
						bLow = math.Min(bLow, parts["VmRSSMiB"])
						bAnon = math.Min(bAnon, parts["RssAnonMiB"])
					}
				}
			}
			settled[i] = round(low, 1)
			settledAnon[i] = round(lowAnon, 1)
			befSettled[i], befAnon[i] = round(bLow, 1), round(bAnon, 1)
		}
	}
	cpu := cpuSeconds(e.provPID) - cpu0
	s := sortDurations(lat)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}

	// The floor: what the simulator takes to answer the same list (GET and read the body), and
	// for reference a Go client's whole list step (GET, decode the fields the provider uses, index).
	var fetch, whole []time.Duration
	size := 0
	for i := 0; i < min(10, p.Refreshes); i++ {
		f, w, n, err := e.goList()
		if err != nil {
			t.Errorf("Go list floor: %v", err)
			break
		}
		fetch, whole, size = append(fetch, f), append(whole, w), n
	}
	fs, ws := sortDurations(fetch), sortDurations(whole)

	exactlyOne := len(listCalls) == 1 && listCalls[1] == p.Refreshes
	perRefresh := []string{}
	for n, count := range listCalls {
		perRefresh = append(perRefresh, fmt.Sprintf("%d list call(s): %d Refreshes", n, count))
	}
	sort.Strings(perRefresh)
	r10, r100 := rssAt["10"], rssAt[strconv.Itoa(p.Refreshes)]
	e.res.Refresh = map[string]any{
		"refreshes": p.Refreshes, "p50_ms": round(ms(pct(s, 0.5)), 2), "p99_ms": round(ms(pct(s, 0.99)), 2),
		"mean_ms": round(ms(sum/time.Duration(len(s))), 2), "max_ms": round(ms(s[len(s)-1]), 2),
		"serverCpuMsPerRefresh": round(cpu*1000/float64(p.Refreshes), 2),
		"listCallsPerRefresh":   perRefresh, "exactlyOneListCall": exactlyOne, "otherApiCalls": otherCalls,
		"listFetchFloor_p50_ms": round(ms(pct(fs, 0.5)), 2), "goListDecodeIndex_p50_ms": round(ms(pct(ws, 0.5)), 2), "listResponseBytes": size,
		"simulatorFaultRules": 0,
	}
	e.res.Process["rssDuringRefreshesMiB"] = rssAt
	e.res.Process["rssSeriesEvery10thMiB"] = rssSeries
	e.res.Process["rssAfterRefresh10MiB"] = r10
	e.res.Process["rssAfterRefreshLastMiB"] = r100
	// Growth between the 10th and the last Refresh, robust to when the collector happened to run:
	// the least settled RSS of the first third of the samples against that of the last third.
	var marks []int
	for i := 10; i <= p.Refreshes; i += 10 {
		marks = append(marks, i)
	}
	k := max(1, len(marks)/3)
	leastOf := func(of map[int]float64, ms []int) float64 {
		v := math.Inf(1)
		for _, m := range ms {
			v = math.Min(v, of[m])
		}
		return v
	}
	least := func(ms []int) float64 { return leastOf(settled, ms) }
	series, anonSeries := []float64{}, []float64{}
	for _, m := range marks {
		series = append(series, settled[m])
		anonSeries = append(anonSeries, settledAnon[m])
	}
	if e.before != nil {
		bs, ba := []float64{}, []float64{}
		for _, m := range marks {
			bs, ba = append(bs, befSettled[m]), append(ba, befAnon[m])
		}
		bl := sortDurations(befLat)
		e.res.Process["before"] = map[string]any{
			"rssSettledEvery10thMiB": bs, "rssAnonSettledEvery10thMiB": ba,
			"rssSettledAfterRefreshLastMiB": leastOf(befSettled, marks[len(marks)-k:]), "rssAnonSettledAfterRefreshLastMiB": leastOf(befAnon, marks[len(marks)-k:]),
			"rssPeakMiB": rssParts(e.befPID)["VmHWMMiB"], "refreshCpuMs": round((cpuSeconds(e.befPID)-befCPU0)*1000/float64(p.Refreshes), 2),
			"refresh_p50_ms": round(ms(pct(bl, 0.5)), 2),
		}
		logf("bench: -before binary: RSS settled %v MiB (anonymous %v MiB); peak %.1f MiB", bs, ba, rssParts(e.befPID)["VmHWMMiB"])
	}
	e.res.Process["rssAnonSettledEvery10thMiB"] = anonSeries
	e.res.Process["rssAnonSettledAfterRefreshLastMiB"] = leastOf(settledAnon, marks[len(marks)-k:])
	e.res.Process["rssSettledEvery10thMiB"] = series
	e.res.Process["rssSettledAfterRefresh10MiB"] = least(marks[:k])
	e.res.Process["rssSettledAfterRefreshLastMiB"] = least(marks[len(marks)-k:])
	e.res.Process["rssSettledWindows"] = fmt.Sprintf("Refreshes %d..%d vs %d..%d", marks[0], marks[k-1], marks[len(marks)-k], marks[len(marks)-1])
	e.res.Process["rssPeakMiB"] = rssParts(e.provPID)["VmHWMMiB"]
	e.res.Process["rssPartsAfterRefreshes"] = rssParts(e.provPID)
	logf("bench: RSS settled (least over 2 s) after every 10th Refresh: %v MiB (anonymous %v MiB); peak %.1f MiB", series, anonSeries, e.res.Process["rssPeakMiB"])
	logf("bench: Refresh x%d at %d servers: p50 %.1f ms p99 %.1f ms (the simulator's answer alone p50 %.1f ms, %d KiB; Go GET+decode+index p50 %.1f ms); %s; other API calls %d; RSS after 10th %.1f MiB, after %dth %.1f MiB",
		p.Refreshes, p.Servers, ms(pct(s, 0.5)), ms(pct(s, 0.99)), ms(pct(fs, 0.5)), size/1024, ms(pct(ws, 0.5)), strings.Join(perRefresh, ", "), otherCalls, r10, p.Refreshes, r100)
}

// goList is what any Refresh must do at least: GET the tag-filtered list
// (fetch: until the body is read), then decode it (into the fields the
// provider uses) and index it (whole).
func (e *env) goList() (fetch, whole time.Duration, size int, err error) {
	t0 := time.Now()
	req, _ := http.NewRequest("GET", e.sim.API+"/servers?tag:"+clusterTag+"="+clusterName, nil)
	req.Header.Set("Authorization", "Bearer "+harness.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, 0, 0, err
	}
	fetch = time.Since(t0)
	var list []listedServer
	if err := json.Unmarshal(body, &list); err != nil {
		return 0, 0, 0, err
	}
	byUUID, byName := map[string]int{}, map[string]int{}
	for i, s := range list {
		byUUID[s.UUID], byName[s.Name] = i, i
	}
	whole = time.Since(t0)
	if len(list) != e.p.Servers {
		return 0, 0, 0, fmt.Errorf("list has %d servers, expected %d", len(list), e.p.Servers)
	}
	return fetch, whole, len(body), nil
}

// ------------------------------------------------------------------ process start

// startTimes spawns the provider and times spawn -> first answered call
// (NodeGroups over mTLS), against an empty account and against the seeded one.
func (e *env) startTimes() {
	t, p := e.t, e.p
	empty := harness.StartSim(t, e.bin)
	var idleParts map[string]float64
	// Where the start time goes: spawn -> "initial view of the cloud loaded" (runtime, bundle,
	// config, the flavor and server lists) -> "serving gRPC" (listening) -> first answer
	// (TLS handshake, HTTP/2 session, first call).
	type phase [3]time.Duration
	trial := func(bin, api string, i int, measureRSS bool) (time.Duration, float64, phase) {
		addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
		cc := harness.CloudConfig(t, e.dir, fmt.Sprintf("cloud-config-start-%d.yaml", i), addr, e.certs, "10s")
		conn, err := dialProbe(cc, time.Now().Add(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := wire.NewCloudProviderClient(conn)
		var mu sync.Mutex
		var viewAt, servingAt time.Duration
		t0 := time.Now()
		ch := spawn(t, bin, []string{"serve", "--config", e.cfgPath, "--listen", addr, "--tls-cert", e.certs.ServerCert, "--tls-key", e.certs.ServerKey, "--tls-client-ca", e.certs.CA},
			[]string{"CLOUDSCALE_API_TOKEN=" + harness.Token, "CLOUDSCALE_API_URL=" + api}, func(line string) {
				mu.Lock()
				defer mu.Unlock()
				if viewAt == 0 && strings.Contains(line, "initial view of the cloud loaded") {
					viewAt = time.Since(t0)
				}
				if servingAt == 0 && strings.Contains(line, "serving gRPC") {
					servingAt = time.Since(t0)
				}
			})
		defer ch.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = c.NodeGroups(ctx, &wire.NodeGroupsRequest{}, grpc.WaitForReady(true))
		d := time.Since(t0)
		cancel()
		time.Sleep(20 * time.Millisecond) // let the log lines arrive
		mu.Lock()
		ph := phase{viewAt, servingAt, d}
		mu.Unlock()
		if err != nil {
			t.Fatalf("start trial %d: no answer: %v\n%s", i, err, ch.Output())
		}
		rss := 0.0
		if measureRSS {
			time.Sleep(time.Second)
			rss, _ = rssMiB(ch.Pid())
			idleParts = rssParts(ch.Pid())
		}
		return d, rss, ph
	}
	// The provider, the -before binary and the Go baseline take turns, the order
	// rotating every round, so that the machine's load hits all of them alike.
	var starts, startsFull, goStarts, beforeStarts []time.Duration
	var phases, beforePhases []phase
	var rssIdle []float64
	before := ""
	if *flagBefore != "" {
		before, _ = filepath.Abs(*flagBefore)
	}
	for i := 0; i < p.StartTrials; i++ {
		for k := 0; k < 3; k++ {
			switch (i + k) % 3 {
			case 0:
				d, rss, ph := trial(e.bin, empty.API, i, true)
				starts, rssIdle, phases = append(starts, d), append(rssIdle, rss), append(phases, ph)
			case 1:
				goStarts = append(goStarts, e.baselineStart())
			case 2:
				if before != "" {
					d, _, ph := trial(before, empty.API, 200+i, false)
					beforeStarts, beforePhases = append(beforeStarts, d), append(beforePhases, ph)
				}
			}
		}
	}
	for i := 0; i < p.StartTrialsFull; i++ {
		d, _, _ := trial(e.bin, e.sim.API, 100+i, false)
		startsFull = append(startsFull, d)
	}
	empty.Stop()
	// The runtime and the bundle alone: `version` from spawn to exit.
	version := func(bin string) []time.Duration {
		var out []time.Duration
		for i := 0; i < max(3, p.StartTrials/2); i++ {
			t0 := time.Now()
			if err := exec.Command(bin, "version").Run(); err != nil {
				t.Errorf("%s version: %v", bin, err)
			}
			out = append(out, time.Since(t0))
		}
		return out
	}
	phaseP50 := func(phases []phase, versions []time.Duration) map[string]float64 {
		var pv, ps, pf []time.Duration
		for _, ph := range phases {
			pv, ps, pf = append(pv, ph[0]), append(ps, ph[1]-ph[0]), append(pf, ph[2]-ph[1])
		}
		return map[string]float64{
			"spawnToViewLoaded":      round(ms(pct(sortDurations(pv), 0.5)), 1),
			"viewLoadedToListening":  round(ms(pct(sortDurations(ps), 0.5)), 1),
			"listeningToFirstAnswer": round(ms(pct(sortDurations(pf), 0.5)), 1),
			"versionCommand":         round(ms(pct(sortDurations(versions), 0.5)), 1),
		}
	}
	e.res.Process["startPhasesEmpty_p50_ms"] = phaseP50(phases, version(e.bin))
	ss, sf := sortDurations(starts), sortDurations(startsFull)
	sort.Float64s(rssIdle)
	msList := func(d []time.Duration) []float64 {
		out := []float64{}
		for _, x := range d {
			out = append(out, round(ms(x), 1))
		}
		return out
	}
	e.res.Process["startEmpty_ms"] = msList(starts)
	e.res.Process["startEmpty_p50_ms"] = round(ms(pct(ss, 0.5)), 1)
	e.res.Process["startAtScale_ms"] = msList(startsFull)
	e.res.Process["startAtScale_p50_ms"] = round(ms(pct(sf, 0.5)), 1)
	e.res.Process["rssIdleMiB"] = round(rssIdle[len(rssIdle)/2], 1)
	e.res.Process["rssPartsIdle"] = idleParts
	e.res.Process["baselineStarts_ms"] = msList(goStarts)
	e.res.Process["baselineStart_ms"] = round(ms(pct(sortDurations(goStarts), 0.5)), 1)
	logf("bench: start phases (p50, empty account): %v", e.res.Process["startPhasesEmpty_p50_ms"])
	logf("bench: start to first served call: empty account p50 %.1f ms %v; with %d servers p50 %.1f ms %v; Go baseline p50 %.1f ms %v; RSS idle %.1f MiB %v",
		ms(pct(ss, 0.5)), msList(starts), p.Servers, ms(pct(sf, 0.5)), msList(startsFull), e.res.Process["baselineStart_ms"], msList(goStarts), rssIdle[len(rssIdle)/2], idleParts)
	if before != "" {
		bm, _ := e.res.Process["before"].(map[string]any)
		if bm == nil {
			bm = map[string]any{}
			e.res.Process["before"] = bm
		}
		bm["startEmpty_ms"] = msList(beforeStarts)
		bm["startEmpty_p50_ms"] = round(ms(pct(sortDurations(beforeStarts), 0.5)), 1)
		bm["startPhasesEmpty_p50_ms"] = phaseP50(beforePhases, version(before))
		logf("bench: A/B start: before p50 %.1f ms %v, phases %v", bm["startEmpty_p50_ms"], bm["startEmpty_ms"], bm["startPhasesEmpty_p50_ms"])
	}
}

// baselineStart times the Go baseline the same way (spawn -> first answered
// NodeGroups), for reference: what a process start costs without Bun.
func (e *env) baselineStart() time.Duration {
	t := e.t
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	cc := harness.CloudConfig(t, e.dir, "cloud-config-start-baseline.yaml", addr, e.certs, "10s")
	conn, err := dialProbe(cc, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	self, _ := os.Executable()
	t0 := time.Now()
	ch := spawn(t, self, []string{"-test.run=^$"}, []string{
		"BENCH_ROLE=baseline", "BENCH_BASELINE_DATA=" + filepath.Join(e.dir, "baseline.json"), "BENCH_BASELINE_LISTEN=" + addr,
		"BENCH_TLS_CERT=" + e.certs.ServerCert, "BENCH_TLS_KEY=" + e.certs.ServerKey, "BENCH_TLS_CLIENT_CA=" + e.certs.CA,
	}, nil)
	defer ch.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := wire.NewCloudProviderClient(conn).NodeGroups(ctx, &wire.NodeGroupsRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Errorf("baseline start: %v\n%s", err, ch.Output())
	}
	return time.Since(t0)
}

// ------------------------------------------------------------------ scale-up

func (e *env) scaleUp() {
	t, p := e.t, e.p
	g := e.groups[0].Name
	ctx, cancel := e.ctx()
	_, err := e.provider.Refresh(ctx, &wire.RefreshRequest{}) // a fresh view: scale-up refuses a stale one
	cancel()
	if err != nil {
		t.Fatalf("Refresh before scale-up: %v", err)
	}
	ctx, cancel = e.ctx()
	ts0, _ := e.provider.NodeGroupTargetSize(ctx, &wire.NodeGroupTargetSizeRequest{Id: g})
	cancel()
	e.sim.Control(t, "POST", "/_sim/faults", map[string]any{"rules": []map[string]any{{"method": "POST", "path": "/v1/servers", "latencyMs": p.PostLatency.Milliseconds()}}})
	e.sim.Control(t, "POST", "/_sim/counters/reset", nil)
	usage := func() int {
		var st struct {
			Usage struct {
				Servers int `json:"servers"`
			} `json:"usage"`
		}
		_ = json.Unmarshal(e.sim.Control(t, "GET", "/_sim/state?servers=0", nil), &st)
		return st.Usage.Servers
	}
	before := usage()
	ideal := time.Duration(math.Ceil(float64(p.ScaleDelta)/float64(p.CreateConcurrency))) * p.PostLatency

	ctx, cancel = e.ctx()
	t0 := time.Now()
	_, err = e.provider.NodeGroupIncreaseSize(ctx, &wire.NodeGroupIncreaseSizeRequest{Id: g, Delta: int32(p.ScaleDelta)})
	ack := time.Since(t0)
	cancel()
	if err != nil {
		t.Fatalf("IncreaseSize(%s, %d): %v", g, p.ScaleDelta, err)
	}
	ctx, cancel = e.ctx()
	ts1, _ := e.provider.NodeGroupTargetSize(ctx, &wire.NodeGroupTargetSizeRequest{Id: g})
	cancel()
	limit := 3*ideal + 10*time.Second
	var polled time.Duration
	for {
		if usage() >= before+p.ScaleDelta {
			polled = time.Since(t0)
			break
		}
		if time.Since(t0) > limit {
			t.Errorf("scale-up: only %d of %d servers created after %s", usage()-before, p.ScaleDelta, limit)
			polled = time.Since(t0)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Exact: the created_at of the last new server (the simulator stamps it when it handles the POST).
	var servers []struct {
		Name      string `json:"name"`
		CreatedAt string `json:"created_at"`
	}
	_ = json.Unmarshal(e.sim.Control(t, "GET", "/_sim/servers?tag:"+groupTag+"="+g+"&tag:"+clusterTag+"="+clusterName, nil), &servers)
	seededNames := map[string]bool{}
	for _, s := range e.ours() {
		seededNames[s.Name] = true
	}
	var last time.Time
	newCount := 0
	for _, s := range servers {
		if seededNames[s.Name] {
			continue
		}
		newCount++
		if ct, err := time.Parse(time.RFC3339Nano, s.CreatedAt); err == nil && ct.After(last) {
			last = ct
		}
	}
	all := polled
	if !last.IsZero() && newCount >= p.ScaleDelta {
		all = last.Sub(t0)
	}
	posts := e.counters()["POST /v1/servers"]
	e.sim.Control(t, "POST", "/_sim/reset-faults", nil)
	e.res.ScaleUp = map[string]any{
		"group": g, "delta": p.ScaleDelta, "postLatency_ms": p.PostLatency.Milliseconds(), "createConcurrency": p.CreateConcurrency,
		"ack_ms": round(ms(ack), 1), "targetSizeBefore": ts0.GetTargetSize(), "targetSizeAfterAck": ts1.GetTargetSize(),
		"allCreated_s": round(all.Seconds(), 2), "allCreatedPolled_s": round(polled.Seconds(), 2), "ideal_s": round(ideal.Seconds(), 2),
		"ratioToIdeal": round(all.Seconds()/ideal.Seconds(), 3), "newServers": newCount, "postCalls": posts,
	}
	if int(ts1.GetTargetSize()) != int(ts0.GetTargetSize())+p.ScaleDelta {
		t.Errorf("TargetSize after IncreaseSize(%d): %d, expected %d", p.ScaleDelta, ts1.GetTargetSize(), int(ts0.GetTargetSize())+p.ScaleDelta)
	}
	if posts != p.ScaleDelta || newCount != p.ScaleDelta {
		t.Errorf("scale-up by %d made %d POSTs and %d new servers", p.ScaleDelta, posts, newCount)
	}
	logf("bench: IncreaseSize(%d) at %s per POST: acknowledged in %.1f ms; all %d created after %.2f s (ideal %.1f s, x%.2f); %d POSTs",
		p.ScaleDelta, p.PostLatency, ms(ack), newCount, all.Seconds(), ideal.Seconds(), all.Seconds()/ideal.Seconds(), posts)
}

// ------------------------------------------------------------------ verdicts and report

func (e *env) evaluate() {
	r := e.res
	// worst is the lookup with the largest (or, for throughput, the smallest) figure of a mode.
	worst := func(mode string, of func(l lookupResult) float64, smallest bool) (float64, string) {
		v, key := math.NaN(), ""
		for _, l := range r.Lookups {
			if l.Mode != mode {
				continue
			}
			x := of(l)
			if math.IsNaN(v) || (smallest && x < v) || (!smallest && x > v) {
				v, key = x, l.Key
			}
		}
		return v, key
	}
	loopRatio, _ := r.Loop["ratio"].(float64)
	ps, _ := r.Loop["provider"].(map[string]any)
	bs, _ := r.Loop["baseline"].(map[string]any)
	r.Targets = append(r.Targets, target{"CA loop", fmt.Sprintf("<= %.1fx Go baseline (wall time)", loopX),
		fmt.Sprintf("x%.2f (%.0f / %.0f ms)", loopRatio, ps["wall_median_ms"], bs["wall_median_ms"]), loopRatio > 0 && loopRatio <= loopX && ps["errors"] == 0 && ps["wrongAnswers"] == 0})
	v, k := worst("seq", func(l lookupResult) float64 { return l.P50X }, false)
	r.Targets = append(r.Targets, target{"lookups seq p50", fmt.Sprintf("<= %.1fx Go baseline (every RPC)", seqP50X), fmt.Sprintf("worst x%.2f (%s)", v, k), v <= seqP50X})
	v, k = worst("seq", func(l lookupResult) float64 { return l.P99X }, false)
	r.Targets = append(r.Targets, target{"lookups seq p99", fmt.Sprintf("<= %.1fx Go baseline (every RPC)", seqP99X), fmt.Sprintf("worst x%.2f (%s)", v, k), v <= seqP99X})
	v, k = worst("c32", func(l lookupResult) float64 { return l.TputX }, true)
	r.Targets = append(r.Targets, target{"lookups c32 throughput", fmt.Sprintf(">= %.1fx Go baseline (every RPC)", c32Throughput), fmt.Sprintf("worst x%.2f (%s)", v, k), v >= c32Throughput})
	v, k = worst("c32", func(l lookupResult) float64 { return l.P99X }, false)
	r.Targets = append(r.Targets, target{"lookups c32 p99", fmt.Sprintf("<= %.1fx Go baseline (every RPC)", c32P99X), fmt.Sprintf("worst x%.2f (%s)", v, k), v <= c32P99X})
	settled := r.Process["rssSettledAfterRefreshLastMiB"].(float64)
	peak, _ := r.Process["rssPeakMiB"].(float64)
	anon := r.Process["rssAnonSettledAfterRefreshLastMiB"].(float64)
	r.Targets = append(r.Targets, target{fmt.Sprintf("RSS settled at %d servers", e.p.Servers), fmt.Sprintf("<= %d MiB", rssSettledLimitMiB), fmt.Sprintf("%.1f MiB", settled), settled <= rssSettledLimitMiB})
	r.Targets = append(r.Targets, target{fmt.Sprintf("RSS peak at %d servers", e.p.Servers), fmt.Sprintf("<= %d MiB (VmHWM)", rssPeakLimitMiB), fmt.Sprintf("%.1f MiB", peak), peak <= rssPeakLimitMiB})
	r.Targets = append(r.Targets, target{fmt.Sprintf("anonymous memory settled at %d servers", e.p.Servers), fmt.Sprintf("<= %d MiB (RssAnon)", anonSettledMiB), fmt.Sprintf("%.1f MiB", anon), anon <= anonSettledMiB})
	st := r.Process["startEmpty_p50_ms"].(float64)
	goStart := r.Process["baselineStart_ms"].(float64)
	r.Targets = append(r.Targets, target{"start to first served call", fmt.Sprintf("<= %.0fx Go baseline", startX),
		fmt.Sprintf("x%.2f (%.1f / %.1f ms)", st/goStart, st, goStart), st <= startX*goStart})
	r.Targets = append(r.Targets, target{"start to first served call (absolute)", fmt.Sprintf("<= %d ms", startLimit.Milliseconds()),
		fmt.Sprintf("%.1f ms (p50; %.1f ms with %d servers)", st, r.Process["startAtScale_p50_ms"], e.p.Servers), st <= float64(startLimit.Milliseconds())})
	one, _ := r.Refresh["exactlyOneListCall"].(bool)
	r.Targets = append(r.Targets, target{"list calls per Refresh", "exactly 1", strings.Join(r.Refresh["listCallsPerRefresh"].([]string), ", "), one})
	ack := r.ScaleUp["ack_ms"].(float64)
	r.Targets = append(r.Targets, target{"IncreaseSize acknowledged", fmt.Sprintf("< %d ms (%d ms per POST)", ackLimit.Milliseconds(), e.p.PostLatency.Milliseconds()),
		fmt.Sprintf("%.1f ms", ack), ack < float64(ackLimit.Milliseconds())})
	ratio := r.ScaleUp["ratioToIdeal"].(float64)
	r.Targets = append(r.Targets, target{"all created", fmt.Sprintf("<= %.1fx ideal (%.1f s)", createsX, r.ScaleUp["ideal_s"]),
		fmt.Sprintf("%.2f s (x%.2f)", r.ScaleUp["allCreated_s"], ratio), ratio <= createsX && r.ScaleUp["newServers"].(int) == e.p.ScaleDelta})
	rss := r.Process["rssAfterRefreshLastMiB"].(float64)

	// The summary line, in the order of the issue.
	for _, l := range r.Lookups {
		r.fig(l.Key+"_p50_us", l.Provider.P50us)
		r.fig(l.Key+"_p99_us", l.Provider.P99us)
		r.fig(l.Key+"_p50_x", l.P50X)
		r.fig(l.Key+"_p99_x", l.P99X)
		if l.Mode == "c32" {
			r.fig(l.Key+"_tput_x", l.TputX)
		}
	}
	r.fig("loop", loopRatio)
	r.fig("loop_ms", ps["wall_median_ms"])
	r.fig("loop_go_ms", bs["wall_median_ms"])
	r.fig("loop_without_refresh_x", r.Loop["withoutRefreshRatio"])
	r.fig("refresh_p50_ms", r.Refresh["p50_ms"])
	r.fig("refresh_p99_ms", r.Refresh["p99_ms"])
	r.fig("refresh_list_fetch_ms", r.Refresh["listFetchFloor_p50_ms"])
	lists := "1"
	if !one {
		lists = strings.ReplaceAll(strings.Join(r.Refresh["listCallsPerRefresh"].([]string), ";"), " ", "")
	}
	r.fig("refresh_list_calls", lists)
	r.fig("refresh_other_api_calls", r.Refresh["otherApiCalls"])
	r.fig("scaleup_ack_ms", ack)
	r.fig("scaleup_all_created_s", r.ScaleUp["allCreated_s"])
	r.fig("scaleup_ideal_s", r.ScaleUp["ideal_s"])
	r.fig("scaleup_x", ratio)
	r.fig("start_ms", st)
	r.fig("start_x", round(st/goStart, 2))
	r.fig("start_at_scale_ms", r.Process["startAtScale_p50_ms"])
	r.fig("rss_idle_mib", r.Process["rssIdleMiB"])
	r.fig("rss_mib", rss)
	r.fig("rss_settled_mib", r.Process["rssSettledAfterRefreshLastMiB"])
	r.fig("rss_peak_mib", r.Process["rssPeakMiB"])
	r.fig("rss_anon_settled_mib", anon)
	growth := round(r.Process["rssSettledAfterRefreshLastMiB"].(float64)-r.Process["rssSettledAfterRefresh10MiB"].(float64), 1)
	r.fig("rss_growth_10_to_last_mib", growth)
	grew := "no"
	if growth > math.Max(4, 0.1*r.Process["rssSettledAfterRefresh10MiB"].(float64)) {
		grew = "yes"
	}
	r.Process["rssGrewBetween10thAndLast"] = grew == "yes"
	r.fig("rss_grew", grew)
	if *flagCAScale != "" {
		r.addCAScale(readCAScale(*flagCAScale))
	}
	met := 0
	for _, tg := range r.Targets {
		if tg.Met {
			met++
		}
	}
	r.fig("targets_met", fmt.Sprintf("%d/%d", met, len(r.Targets)))
	r.fig("cores", runtime.NumCPU())
	r.fig("commit", r.Commit)
}

// notesMarker starts the part of results.md that a run keeps.
const notesMarker = "<!-- notes: kept by bench runs -->"

func (e *env) report() {
	r := e.res
	var b strings.Builder
	fmt.Fprintf(&b, "\n## autoscaler-cloudscale benchmark (%s)\n\n", r.Params.Mode)
	fmt.Fprintf(&b, "Machine: %v cores, %v, %v; load average %v at start, %v at end. Commit %s; %s.\n",
		r.Machine["cores"], r.Machine["cpuModel"], r.Machine["kernel"], r.Machine["loadavgStart"], r.Machine["loadavgEnd"], r.Commit, r.Binary)
	fmt.Fprintf(&b, "Scale: %d servers in %d node groups + %d foreign; client grpc-go (CA's stack), mTLS, one connection; c32 = 32 concurrent callers.\n\n", r.Params.Servers, r.Params.Groups, r.Params.Foreign)
	fmt.Fprintf(&b, "| figure | mode | calls | provider p50 | provider p99 | Go p50 | Go p99 | p50 ratio | p99 ratio | calls/s ratio | CPU/call provider / Go |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range r.Lookups {
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f µs | %.0f µs | %.0f µs | %.0f µs | %.2f× | %.2f× | %.2f× | %.0f / %.0f µs |\n",
			l.RPC, l.Mode, l.Provider.Calls, l.Provider.P50us, l.Provider.P99us, l.Baseline.P50us, l.Baseline.P99us, l.P50X, l.P99X, l.TputX, l.Provider.CPUusCall, l.Baseline.CPUusCall)
	}
	if r.Before != "" {
		fmt.Fprintf(&b, "\nA/B in the same rounds: before = %s.\n\n", r.Before)
		fmt.Fprintf(&b, "| figure | mode | p50 before → after | p99 before → after | CPU/call before → after | calls/s after ÷ before |\n|---|---|---:|---:|---:|---:|\n")
		for _, l := range r.Lookups {
			if l.Before == nil {
				continue
			}
			tput := 0.0
			if l.Before.PerSecond > 0 {
				tput = l.Provider.PerSecond / l.Before.PerSecond
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f → %.0f µs | %.0f → %.0f µs | %.0f → %.0f µs | %.2f× |\n",
				l.RPC, l.Mode, l.Before.P50us, l.Provider.P50us, l.Before.P99us, l.Provider.P99us, l.Before.CPUusCall, l.Provider.CPUusCall, tput)
		}
		if bf, ok := r.Loop["before"].(map[string]any); ok {
			lp := r.Loop["provider"].(map[string]any)
			fmt.Fprintf(&b, "| CA loop (median wall) | seq | %.0f → %.0f ms | | %.0f → %.0f ms per loop | |\n", bf["wall_median_ms"], lp["wall_median_ms"], bf["cpuMsPerLoop"], lp["cpuMsPerLoop"])
		}
		if bm, ok := r.Process["before"].(map[string]any); ok {
			fmt.Fprintf(&b, "\n| memory and Refresh at %d servers | before | after |\n|---|---:|---:|\n", r.Params.Servers)
			fmt.Fprintf(&b, "| RSS settled (last windows) | %.1f MiB | %.1f MiB |\n", bm["rssSettledAfterRefreshLastMiB"], r.Process["rssSettledAfterRefreshLastMiB"])
			fmt.Fprintf(&b, "| anonymous memory settled | %.1f MiB | %.1f MiB |\n", bm["rssAnonSettledAfterRefreshLastMiB"], r.Process["rssAnonSettledAfterRefreshLastMiB"])
			fmt.Fprintf(&b, "| RSS peak (VmHWM) | %.1f MiB | %.1f MiB |\n", bm["rssPeakMiB"], r.Process["rssPeakMiB"])
			fmt.Fprintf(&b, "| Refresh p50 / CPU per Refresh | %.1f / %.1f ms | %.1f / %.1f ms |\n", bm["refresh_p50_ms"], bm["refreshCpuMs"], r.Refresh["p50_ms"], r.Refresh["serverCpuMsPerRefresh"])
			if st, ok := bm["startEmpty_p50_ms"]; ok {
				fmt.Fprintf(&b, "| start to first served call p50 (same rounds) | %.1f ms | %.1f ms |\n", st, r.Process["startEmpty_p50_ms"])
			}
		}
	}
	fmt.Fprintf(&b, "\n| figure | value |\n|---|---|\n")
	lp, lb := r.Loop["provider"].(map[string]any), r.Loop["baseline"].(map[string]any)
	fmt.Fprintf(&b, "| CA loop: %s (median of %d) | provider %.0f ms %v (Refresh %.0f ms, CPU %.0f ms); Go %.0f ms %v (Refresh %.0f ms, CPU %.0f ms); ratio %.2f× (%.2f× without Refresh) |\n",
		r.Loop["what"], r.Loop["rounds"], lp["wall_median_ms"], lp["wall_ms"], lp["refresh_median_ms"], lp["cpuMsPerLoop"], lb["wall_median_ms"], lb["wall_ms"], lb["refresh_median_ms"], lb["cpuMsPerLoop"], r.Loop["ratio"], r.Loop["withoutRefreshRatio"])
	fmt.Fprintf(&b, "| Refresh at %d servers (%d calls, simulator adds no latency) | p50 %.1f ms, p99 %.1f ms, CPU %.1f ms per Refresh |\n", r.Params.Servers, r.Params.Refreshes, r.Refresh["p50_ms"], r.Refresh["p99_ms"], r.Refresh["serverCpuMsPerRefresh"])
	fmt.Fprintf(&b, "| the same list from the simulator (%d KiB): GET until the body is read / Go GET + decode + index | p50 %.1f ms / %.1f ms |\n", r.Refresh["listResponseBytes"].(int)/1024, r.Refresh["listFetchFloor_p50_ms"], r.Refresh["goListDecodeIndex_p50_ms"])
	fmt.Fprintf(&b, "| API calls per Refresh | %s; other calls: %v |\n", strings.Join(r.Refresh["listCallsPerRefresh"].([]string), ", "), r.Refresh["otherApiCalls"])
	fmt.Fprintf(&b, "| IncreaseSize(%d), %d ms per POST, createConcurrency %d | acknowledged in %.1f ms; all created after %.2f s; ideal %.1f s; ratio %.2f× |\n",
		r.Params.ScaleDelta, r.Params.PostLatency.Milliseconds(), r.Params.CreateConcurrency, r.ScaleUp["ack_ms"], r.ScaleUp["allCreated_s"], r.ScaleUp["ideal_s"], r.ScaleUp["ratioToIdeal"])
	fmt.Fprintf(&b, "| start (spawn → first served call) | empty account p50 %.1f ms %v; with %d servers p50 %.1f ms %v; Go baseline p50 %.1f ms %v (same rounds); phases p50 %v |\n",
		r.Process["startEmpty_p50_ms"], r.Process["startEmpty_ms"], r.Params.Servers, r.Process["startAtScale_p50_ms"], r.Process["startAtScale_ms"], r.Process["baselineStart_ms"], r.Process["baselineStarts_ms"], r.Process["startPhasesEmpty_p50_ms"])
	idle := r.Process["rssPartsIdle"].(map[string]float64)
	fmt.Fprintf(&b, "| RSS (VmRSS) idle | %.1f MiB (anonymous %.1f, file-backed %.1f: the mapped executable); Go baseline %.1f MiB at %d servers |\n",
		r.Process["rssIdleMiB"], idle["RssAnonMiB"], idle["RssFileMiB"], r.Process["baselineRssMiB"], r.Params.Servers)
	fmt.Fprintf(&b, "| RSS at %d servers | after start %.1f MiB; after the lookups %.1f MiB; right after the 10th / %dth Refresh %.1f / %.1f MiB; settled (least RSS over 2 s after every 10th Refresh) %v MiB: %s %.1f / %.1f MiB (growth %+.1f MiB: grew %v); peak (VmHWM) %.1f MiB |\n",
		r.Params.Servers, r.Process["rssAfterStartAtScaleMiB"], r.Process["rssAfterLookupsMiB"], r.Params.Refreshes, r.Process["rssAfterRefresh10MiB"], r.Process["rssAfterRefreshLastMiB"],
		r.Process["rssSettledEvery10thMiB"], r.Process["rssSettledWindows"], r.Process["rssSettledAfterRefresh10MiB"], r.Process["rssSettledAfterRefreshLastMiB"],
		r.Process["rssSettledAfterRefreshLastMiB"].(float64)-r.Process["rssSettledAfterRefresh10MiB"].(float64), r.Process["rssGrewBetween10thAndLast"], r.Process["rssPeakMiB"])
	fmt.Fprintf(&b, "| anonymous memory (RssAnon) at %d servers, settled as above | %v MiB; last windows %.1f MiB |\n",
		r.Params.Servers, r.Process["rssAnonSettledEvery10thMiB"], r.Process["rssAnonSettledAfterRefreshLastMiB"])
	if peaks, ok := r.Process["peakAfterPhaseMiB"].([][2]any); ok {
		var parts []string
		for _, p := range peaks {
			parts = append(parts, fmt.Sprintf("%v %v", p[0], p[1]))
		}
		fmt.Fprintf(&b, "| peak (VmHWM) so far, after each phase | %s MiB |\n", strings.Join(parts, "; "))
	}
	if r.CAScale != nil {
		b.WriteString(caScaleMarkdown(r.CAScale))
	}
	fmt.Fprintf(&b, "\n| target | wanted | measured | |\n|---|---|---|---|\n")
	for _, tg := range r.Targets {
		v := "missed"
		if tg.Met {
			v = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** |\n", tg.Name, tg.Target, tg.Value, v)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(&b, "\nWrong answers from the provider: %s\n", strings.Join(r.Checks, "; "))
	}
	fmt.Print(b.String())

	out := *flagOut
	if out == "" {
		root := repoRoot()
		out = filepath.Join(root, "bench", "results.json")
		if r.Params.Mode == "smoke" {
			out = filepath.Join(root, ".cache", "bench", "results-smoke.json")
		}
	}
	_ = os.MkdirAll(filepath.Dir(out), 0o755)
	raw, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(out, append(raw, '\n'), 0o644); err != nil {
		e.t.Errorf("writing %s: %v", out, err)
	}
	// The table replaces the last one; notes kept below the marker (the steps tried, each
	// with its A/B figures) stay.
	mdPath := strings.TrimSuffix(out, ".json") + ".md"
	md := b.String()
	if old, err := os.ReadFile(mdPath); err == nil {
		if i := bytes.Index(old, []byte(notesMarker)); i >= 0 {
			md += "\n" + string(old[i:])
		}
	}
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		e.t.Errorf("writing the table: %v", err)
	}
	fmt.Printf("\nbench: results in %s\n", out)
	var line strings.Builder
	line.WriteString("bench:")
	for _, f := range r.Figures {
		fmt.Fprintf(&line, " %s=%s", f["key"], r.figureMap[f["key"].(string)])
	}
	summaryLine = line.String()
}

// ------------------------------------------------------------------ machine

func machineInfo() map[string]any {
	m := map[string]any{"cores": runtime.NumCPU(), "goVersion": runtime.Version(), "loadavgStart": loadavg()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, v, _ := strings.Cut(line, ":")
				m["cpuModel"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = "Linux " + strings.TrimSpace(string(raw))
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0]); len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			m["memoryGiB"] = round(kb/1024/1024, 1)
		}
	}
	return m
}

// repoRoot is the directory above the working directory that holds package.json.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "package.json")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:3], " ")
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "-dirty"
	}
	return c
}
