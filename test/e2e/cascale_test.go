//go:build cascale

package e2e

// CA at scale: the real cluster-autoscaler 1.36.1 at its default scan interval
// (10 s) against 1,000 and then 5,000 Nodes in 50 node groups, in a steady
// state, with our provider and with the Go baseline server of bench/baseline.go
// answering the same groups and nodes from memory. It measures CA's own
// cluster_autoscaler_function_duration_seconds{function="main"} loop by loop,
// the calls per loop by method, and each server's CPU and memory.
//
// Not part of the default run (build tag cascale); `./scripts/bench.sh
// --ca-scale` (`bun run bench:ca-scale`) builds what it needs and runs it.
//
// Steady state: every group's min size is its server count, so CA neither
// scales up (no pending pods) nor down (min reached) however long the run takes.
// CA is restarted for each block of loops and pointed at one server or the
// other; the blocks alternate ours, Go, Go, ours, … so that drift in the
// machine's load hits both. The first loops of each CA start are not measured.
//
// Env: E2E_BENCH_BIN       the benchmark's test binary (.cache/bench/bench.test: the Go baseline) [required]
//      E2E_SCALE_NODES     node counts, in order (default "1000,5000")
//      E2E_SCALE_LOOPS     measured loops per side and size (default 24)
//      E2E_SCALE_BLOCKS    CA runs per side and size (default 2)
//      E2E_SCALE_OUT       where to write the results JSON (default <run dir>/ca-scale.json)

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
)

const (
	scaleGroups    = 50
	scaleWarmup    = 2 // loops after each CA start that are not measured
	scaleGroupName = "pool-%02d"
)

// The control plane for thousands of Nodes on two shared cores: kwok renews each
// node's lease every 300 s instead of every 10 s (500 writes a second at 5,000
// nodes would swamp the machine), so the node-lifecycle controller must wait
// longer before it calls a node unreachable; and that controller may talk to the
// apiserver faster than its default 20 requests a second, or lifting the
// not-ready taint off 5,000 new Nodes takes a quarter of an hour.
var scaleControlPlaneFlags = map[string][]string{
	"kwok":                    {"--node-lease-duration-seconds=1200"},
	"kube-controller-manager": {"--node-monitor-grace-period=15m", "--kube-api-qps=200", "--kube-api-burst=400"},
}

// scaleSide is one server CA is pointed at: ours or the Go baseline.
type scaleSide struct {
	name  string // "ours" or "go"
	addr  string
	proc  *proc
	calls func() (map[string]float64, error)
}

// scaleBlock is what one CA run measured.
type scaleBlock struct {
	Side     string             `json:"side"`
	Loops    []float64          `json:"loopSeconds"`
	Merged   int                `json:"mergedLoops,omitempty"` // loops that ended between two polls together (their mean is recorded)
	CPU      float64            `json:"serverCpuSeconds"`
	CACPU    float64            `json:"caCpuSeconds"`
	Calls    map[string]float64 `json:"calls"`
	RSS      []float64          `json:"serverRssMiB"`
	Anon     []float64          `json:"serverAnonMiB"`
	Wall     float64            `json:"wallSeconds"`
	LoadAvg  string             `json:"loadavg"`
	HistP50  float64            `json:"caHistogramP50le"` // CA's own bucket bound, for reference
	HistMean float64            `json:"caHistogramMean"`
}

// scaleSideResult sums a side's blocks.
type scaleSideResult struct {
	Loops        int                `json:"loops"`
	P50          float64            `json:"p50Seconds"`
	P90          float64            `json:"p90Seconds"`
	Mean         float64            `json:"meanSeconds"`
	CallsPerLoop map[string]float64 `json:"callsPerLoop"`
	CPUPerLoopMs float64            `json:"serverCpuMsPerLoop"`
	CPUPct       float64            `json:"serverCpuPercent"` // of one core, over the measured wall time
	CACPUPerLoop float64            `json:"caCpuMsPerLoop"`
	RSSMaxMiB    float64            `json:"serverRssMaxMiB"`
	RSSMedMiB    float64            `json:"serverRssMedianMiB"`
	AnonMedMiB   float64            `json:"serverAnonMedianMiB"`
}

type scaleSize struct {
	Nodes       int                        `json:"nodes"`
	Groups      int                        `json:"groups"`
	Registered  float64                    `json:"registerSeconds"` // Nodes created and Ready
	Sides       map[string]scaleSideResult `json:"sides"`
	P50X        float64                    `json:"p50Ratio"` // ours ÷ go
	P90X        float64                    `json:"p90Ratio"`
	Blocks      []scaleBlock               `json:"blocks"`
	LoadStart   string                     `json:"loadavgStart"`
	LoadEnd     string                     `json:"loadavgEnd"`
	ScanSeconds float64                    `json:"caScanIntervalSeconds"`
}

type scaleResults struct {
	StartedAt string      `json:"startedAt"`
	Seconds   float64     `json:"durationSeconds"`
	Cores     int         `json:"cores"`
	CA        string      `json:"ca"`
	Binary    string      `json:"binary"`
	Sizes     []scaleSize `json:"sizes"`
}

func TestCAScale(t *testing.T) {
	started := time.Now()
	benchBin := os.Getenv("E2E_BENCH_BIN")
	if benchBin == "" {
		t.Fatal("E2E_BENCH_BIN is not set: the Go baseline is the benchmark's test binary (scripts/bench.sh --ca-scale builds it)")
	}
	if _, err := os.Stat(benchBin); err != nil {
		t.Fatalf("E2E_BENCH_BIN: %v", err)
	}
	sizes, err := envInts("E2E_SCALE_NODES", []int{1000, 5000})
	if err != nil {
		t.Fatal(err)
	}
	loops, err := envInt("E2E_SCALE_LOOPS", 24)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := envInt("E2E_SCALE_BLOCKS", 2)
	if err != nil {
		t.Fatal(err)
	}
	if loops < blocks {
		// Each CA run measures loops/blocks loops: fewer loops than runs leaves runs with nothing measured.
		t.Fatalf("E2E_SCALE_LOOPS (%d) must be at least E2E_SCALE_BLOCKS (%d)", loops, blocks)
	}
	out := os.Getenv("E2E_SCALE_OUT")
	if out == "" {
		out = filepath.Join(suite.runDir, "ca-scale.json")
	}
	suite.cpFlags = scaleControlPlaneFlags
	res := &scaleResults{StartedAt: started.UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), CA: "1.36.1"}
	if v, err := runOutput(harness.Binary(t), "version"); err == nil {
		res.Binary = v
	}
	write := func() {
		res.Seconds = math.Round(time.Since(started).Seconds())
		raw, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			t.Errorf("results for %s: %v", out, err)
			return
		}
		if err := os.WriteFile(out, append(raw, '\n'), 0o644); err != nil {
			t.Errorf("writing %s: %v", out, err)
		}
	}
	for _, n := range sizes {
		ok := t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			res.Sizes = append(res.Sizes, runScale(t, n, loops, blocks, benchBin))
			write()
		})
		if !ok {
			break
		}
	}
	write()
	fmt.Printf("e2e: CA at scale: results in %s\n", out)
}

func runScale(t *testing.T, nodes, loops, blocks int, benchBin string) scaleSize {
	per := nodes / scaleGroups
	if per < 1 || nodes%scaleGroups != 0 {
		t.Fatalf("E2E_SCALE_NODES: %d is not a multiple of %d groups", nodes, scaleGroups)
	}
	flavors := []string{"flex-4-1", "flex-8-2", "flex-16-4", "plus-8-2", "plus-16-4"}
	var groups []groupSpec
	for i := 0; i < scaleGroups; i++ {
		groups = append(groups, groupSpec{Name: fmt.Sprintf(scaleGroupName, i+1), Flavor: flavors[i%len(flavors)], Min: per, Max: 1000})
	}
	s := newScenario(t, fmt.Sprintf("scale %d nodes", nodes), scenarioOpts{groups: groups})
	size := scaleSize{Nodes: nodes, Groups: scaleGroups, Sides: map[string]scaleSideResult{}, LoadStart: loadavg(), ScanSeconds: 10}
	// Registered last, so it runs first: the Nodes go before the scenario's own cleanup.
	t.Cleanup(func() { s.deleteScaleNodes() })

	t0 := time.Now()
	s.seedScaleServers(groups, per)
	s.waitScaleNodes(nodes)
	s.joiner.stop() // its listing every 500 ms is not part of what is measured
	s.joiner = nil
	size.Registered = math.Round(time.Since(t0).Seconds()*10) / 10
	s.logf("%d servers seeded, %d Nodes registered and Ready in %.1fs", nodes, nodes, size.Registered)
	// CA takes a node as its group's template only once it has been Ready for a minute
	// (stabilizationDelay in its node-info processor); before that it asks the provider for
	// templates, which a steady state does not.
	stable := time.Now().Add(75 * time.Second)

	s.provider.logLevel = "info" // a debug line per call would cost the provider CPU CA's loop waits for
	if err := s.provider.start(); err != nil {
		s.fatalf("provider: %v", err)
	}
	ours := &scaleSide{name: "ours", addr: s.provider.addr, proc: s.provider.current(), calls: func() (map[string]float64, error) {
		return providerCalls(s.provider.healthPort)
	}}
	goSide := s.startBaseline(benchBin)
	time.Sleep(time.Until(stable))

	for b := 0; b < 2*blocks; b++ {
		side := ours
		if (b%4 == 1) || (b%4 == 2) { // ours, Go, Go, ours, …
			side = goSide
		}
		want := loops / blocks
		if b/2 < loops%blocks {
			want++
		}
		blk := s.caBlock(side, want)
		size.Blocks = append(size.Blocks, blk)
		s.t.Logf("block %d (%s): %d loops, p50 %.3fs, load %s", b+1, side.name, len(blk.Loops), median(blk.Loops), blk.LoadAvg)
	}
	size.LoadEnd = loadavg()
	for _, name := range []string{"ours", "go"} {
		size.Sides[name] = summarizeSide(size.Blocks, name)
	}
	o, g := size.Sides["ours"], size.Sides["go"]
	size.P50X = ratio(o.P50, g.P50)
	size.P90X = ratio(o.P90, g.P90)
	s.logf("CA 1.36.1 main loop at %d nodes, %d loops each: ours p50 %.3fs p90 %.3fs, Go baseline p50 %.3fs p90 %.3fs: ours ÷ Go p50 %.2fx, p90 %.2fx",
		nodes, o.Loops, o.P50, o.P90, g.P50, g.P90, size.P50X, size.P90X)
	for _, name := range []string{"ours", "go"} {
		r := size.Sides[name]
		s.logf("  %-4s server CPU %.0f ms per loop (%.1f%% of a core), RSS median %.1f MiB (max %.1f, anonymous %.1f); CA CPU %.0f ms per loop; calls per loop: %s",
			name, r.CPUPerLoopMs, r.CPUPct, r.RSSMedMiB, r.RSSMaxMiB, r.AnonMedMiB, r.CACPUPerLoop, formatCalls(r.CallsPerLoop))
	}
	s.logf("  load average %s at start, %s at end", size.LoadStart, size.LoadEnd)
	s.checkSteady(nodes)
	return size
}

// seedScaleServers puts per servers of each group into the simulator, running,
// tagged as the provider's own, each with user-data that names its host (what
// the joiner registers the Node from).
func (s *scenario) seedScaleServers(groups []groupSpec, per int) {
	s.t.Helper()
	rng := rand.New(rand.NewPCG(19, 19))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var seeds []map[string]any
	for i := 0; i < per; i++ {
		for _, g := range groups {
			b := make([]byte, 8)
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			name := fmt.Sprintf("%s-%s-%s", s.cluster, g.Name, b)
			seeds = append(seeds, map[string]any{
				"name": name, "flavor": g.Flavor, "image": "custom:talos-1.13.2", "zone": "lpg1", "status": "running",
				"volume_size_gb": 20, "tags": map[string]string{clusterTag: s.cluster, groupTag: g.Name},
				"user_data": strings.Replace(talosWorker, "auto: stable", "hostname: "+name, 1),
			})
		}
	}
	for off := 0; off < len(seeds); off += 1000 {
		end := min(off+1000, len(seeds))
		var r struct{ UUIDs []string }
		raw := s.sim.Control(s.t, "POST", "/_sim/servers", map[string]any{"servers": seeds[off:end]})
		if err := json.Unmarshal(raw, &r); err != nil || len(r.UUIDs) != end-off {
			s.fatalf("seeding servers %d..%d: %v %.200s", off, end, err, raw)
		}
	}
	s.sim.Control(s.t, "POST", "/_sim/counters/reset", nil)
}

// waitScaleNodes waits until the joiner has registered a Node for every server,
// kwok reports each Ready and the node-lifecycle controller has lifted the
// not-ready taint.
func (s *scenario) waitScaleNodes(n int) {
	s.t.Helper()
	last := ""
	t0 := time.Now()
	err := waitFor(fmt.Sprintf("%d Nodes Ready", n), nil, 20*time.Minute, 5*time.Second, func() (bool, error) {
		nodes, err := s.kube.nodes(joinedLabel + "=true")
		if err != nil {
			return false, err
		}
		ready, tainted := 0, 0
		for _, nd := range nodes {
			if nd.ready() {
				ready++
			}
			for _, tn := range nd.Spec.Taints {
				if strings.HasPrefix(tn.Key, "node.kubernetes.io/") {
					tainted++
					break
				}
			}
		}
		line := fmt.Sprintf("%d registered, %d Ready, %d still tainted", len(nodes), ready, tainted)
		if line != last {
			s.t.Logf("%6.1fs %s", time.Since(t0).Seconds(), line)
			last = line
		}
		if js := s.joiner.stats(); len(js.JoinErrs) > 0 {
			return false, fmt.Errorf("servers that cannot join: %v", js.JoinErrs[:min(3, len(js.JoinErrs))])
		}
		return len(nodes) == n && ready == n && tainted == 0, fmt.Errorf("%s", line)
	})
	if err != nil {
		s.fatalf("%v", err)
	}
}

// deleteScaleNodes removes the Nodes the joiner registered (it is stopped by then).
func (s *scenario) deleteScaleNodes() {
	sel := "?labelSelector=" + joinedLabel + "%3Dtrue"
	// The apiserver deletes a collection within the one request and stops when its client gives up:
	// at 5,000 Nodes one request outlasts the client's timeout having deleted only part of them. So
	// the deletion is asked again, and each request goes on from what the last one left.
	requests, left := 0, -1
	err := waitFor("Nodes gone", nil, 10*time.Minute, time.Second, func() (bool, error) {
		nodes, err := s.kube.nodes(joinedLabel + "=true")
		if err != nil {
			return false, err
		}
		if left = len(nodes); left == 0 {
			return true, nil
		}
		requests++
		if err := s.kube.do("DELETE", "/api/v1/nodes"+sel, "", nil, nil); err != nil {
			return false, fmt.Errorf("%d Nodes left; deleting them: %v", left, err)
		}
		return false, fmt.Errorf("%d Nodes left", left)
	})
	if err != nil {
		s.t.Errorf("%v", err)
		return
	}
	s.t.Logf("Nodes deleted with %d collection request(s)", requests)
}

// startBaseline starts the Go baseline (the benchmark binary in its baseline
// role): it copies the provider's groups and templates and lists the servers
// once, then answers from memory.
func (s *scenario) startBaseline(benchBin string) *scaleSide {
	s.t.Helper()
	fromCC := harness.CloudConfig(s.t, s.dir, "cloud-config-provider.yaml", s.provider.addr, s.cp.certs, "10s")
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(s.t))
	statsPort := harness.FreePort(s.t)
	pr, err := startProc(s.dir, "go-baseline", benchBin, []string{"-test.run=^$"}, []string{
		"BENCH_ROLE=baseline", "BENCH_BASELINE_FROM=" + fromCC, "BENCH_BASELINE_LISTEN=" + addr,
		fmt.Sprintf("BENCH_BASELINE_STATS_LISTEN=127.0.0.1:%d", statsPort),
		"BENCH_BASELINE_LIST_URL=" + s.sim.API + "/servers?tag:" + clusterTag + "=" + s.cluster, "BENCH_BASELINE_TOKEN=e2e-sim-token",
		"BENCH_TLS_CERT=" + s.cp.certs.ServerCert, "BENCH_TLS_KEY=" + s.cp.certs.ServerKey, "BENCH_TLS_CLIENT_CA=" + s.cp.certs.CA,
	})
	if err != nil {
		s.fatalf("Go baseline: %v", err)
	}
	s.t.Cleanup(func() { pr.Stop(5 * time.Second) })
	err = waitFor("Go baseline serving", pr, time.Minute, 100*time.Millisecond, func() (bool, error) {
		return strings.Contains(pr.Tail(20), "baseline: serving on"), nil
	})
	if err != nil {
		s.fatalf("%v", err)
	}
	s.t.Logf("%s", pr.Tail(1))
	return &scaleSide{name: "go", addr: addr, proc: pr, calls: func() (map[string]float64, error) {
		var m map[string]float64
		raw, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/calls", statsPort))
		if err == nil {
			err = json.Unmarshal(raw, &m)
		}
		return m, err
	}}
}

// caFlagsAtScale are CA's defaults (10 s scan interval, default log verbosity)
// but for what a local run needs: the kubeconfig, our cloud provider, no leader
// election, and the metrics address.
func caFlagsAtScale(kubeconfig, cloudConfig string, metricsPort int) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--cloud-provider=externalgrpc", "--cloud-config=" + cloudConfig,
		"--namespace=kube-system", "--leader-elect=false",
		fmt.Sprintf("--address=127.0.0.1:%d", metricsPort),
	}
}

// caBlock starts CA against one side, lets it run scaleWarmup loops, measures
// `want` loops, and stops it.
func (s *scenario) caBlock(side *scaleSide, want int) scaleBlock {
	s.t.Helper()
	cc := harness.CloudConfig(s.t, s.dir, "cloud-config-"+side.name+".yaml", side.addr, s.cp.certs, "10s")
	port := harness.FreePort(s.t)
	// As every CA of the suite: a token of deploy/'s ServiceAccount for CA (rbac_test.go).
	kubeconfig, err := s.cp.caKubeconfig(s.dir)
	if err != nil {
		s.fatalf("cluster-autoscaler against %s: %v", side.name, err)
	}
	ca, err := startAutoscaler(s.dir, suite.bins["cluster-autoscaler-1.36.1"], "1.36.1", caFlagsAtScale(kubeconfig, cc, port), port)
	if err != nil {
		s.fatalf("cluster-autoscaler against %s: %v", side.name, err)
	}
	defer func() {
		ca.Stop(15 * time.Second)
		if lines := forbidden(ca.logPath); len(lines) > 0 {
			s.errorf("the apiserver refused CA (RBAC from deploy/):\n%s", strings.Join(lines, "\n"))
		}
	}()
	blk := scaleBlock{Side: side.name, LoadAvg: loadavg()}
	var h0 histogram
	var cpu0, caCPU0 float64
	var calls0 map[string]float64
	var t0 time.Time
	measuring := false
	deadline := time.Now().Add(time.Duration(scaleWarmup+want)*30*time.Second + 3*time.Minute)
	for len(blk.Loops) < want {
		if time.Now().After(deadline) {
			s.fatalf("CA against %s: %d of %d loops measured before the deadline; CA printed:\n%s", side.name, len(blk.Loops), want, ca.Tail(40))
		}
		if ca.Exited() {
			s.fatalf("CA against %s exited: %v\n%s", side.name, ca.err, ca.Tail(40))
		}
		if side.proc.Exited() {
			s.fatalf("%s exited: %v\n%s", side.name, side.proc.err, side.proc.Tail(40))
		}
		time.Sleep(time.Second)
		text, err := ca.metrics()
		if err != nil {
			continue
		}
		h := functionDuration(text, "main")
		if !measuring {
			if h.count >= scaleWarmup {
				measuring, h0, t0 = true, h, time.Now()
				cpu0, caCPU0 = procCPU(side.proc), procCPU(ca.proc)
				if calls0, err = side.calls(); err != nil {
					s.fatalf("%s: call counts: %v", side.name, err)
				}
			}
			continue
		}
		if rss, anon, err := procMem(side.proc); err == nil {
			blk.RSS, blk.Anon = append(blk.RSS, rss), append(blk.Anon, anon)
		}
		if d := h.count - h0.count; d >= 1 {
			mean := (h.sum - h0.sum) / d
			for i := 0; i < int(d); i++ {
				blk.Loops = append(blk.Loops, mean)
			}
			if d > 1 {
				blk.Merged += int(d)
			}
			h0 = h
		}
	}
	blk.Wall = time.Since(t0).Seconds()
	blk.CPU, blk.CACPU = procCPU(side.proc)-cpu0, procCPU(ca.proc)-caCPU0
	calls1, err := side.calls()
	if err != nil {
		s.fatalf("%s: call counts: %v", side.name, err)
	}
	blk.Calls = map[string]float64{}
	for k, v := range calls1 {
		if d := v - calls0[k]; d > 0 {
			blk.Calls[k] = d
		}
	}
	if text, err := ca.metrics(); err == nil {
		h := functionDuration(text, "main")
		blk.HistP50, blk.HistMean = h.quantile(0.5), h.mean()
	}
	return blk
}

// checkSteady asserts the run stayed a steady state: every group's target is
// still its server count, and CA asked for no change.
func (s *scenario) checkSteady(nodes int) {
	s.t.Helper()
	if got := len(s.ourServers()); got != nodes {
		s.errorf("servers after the run: %d, want %d (CA changed the cluster: not a steady state)", got, nodes)
	}
	calls, err := providerCalls(s.provider.healthPort)
	if err != nil {
		s.errorf("provider call counts: %v", err)
		return
	}
	for _, m := range []string{"NodeGroupIncreaseSize", "NodeGroupDeleteNodes", "NodeGroupDecreaseTargetSize"} {
		if calls[m] > 0 {
			s.errorf("CA called %s %.0f times: not a steady state", m, calls[m])
		}
	}
}

func summarizeSide(blocks []scaleBlock, side string) scaleSideResult {
	r := scaleSideResult{CallsPerLoop: map[string]float64{}}
	var loops, rss, anon []float64
	var cpu, caCPU, wall float64
	calls := map[string]float64{}
	for _, b := range blocks {
		if b.Side != side {
			continue
		}
		loops = append(loops, b.Loops...)
		rss = append(rss, b.RSS...)
		anon = append(anon, b.Anon...)
		cpu += b.CPU
		caCPU += b.CACPU
		wall += b.Wall
		for k, v := range b.Calls {
			calls[k] += v
		}
	}
	r.Loops = len(loops)
	if r.Loops == 0 {
		return r
	}
	sort.Float64s(loops)
	r.P50, r.P90 = round3(nearestRank(loops, 0.5)), round3(nearestRank(loops, 0.9))
	sum := 0.0
	for _, v := range loops {
		sum += v
	}
	r.Mean = round3(sum / float64(len(loops)))
	for k, v := range calls {
		r.CallsPerLoop[k] = math.Round(v/float64(r.Loops)*10) / 10
	}
	r.CPUPerLoopMs = math.Round(cpu / float64(r.Loops) * 1000)
	if wall > 0 {
		r.CPUPct = math.Round(cpu/wall*1000) / 10
	}
	r.CACPUPerLoop = math.Round(caCPU / float64(r.Loops) * 1000)
	if len(rss) > 0 {
		sort.Float64s(rss)
		sort.Float64s(anon)
		r.RSSMaxMiB, r.RSSMedMiB = rss[len(rss)-1], nearestRank(rss, 0.5)
		r.AnonMedMiB = nearestRank(anon, 0.5)
	}
	return r
}

// ---------------------------------------------------------------- small readers

// providerCalls reads the provider's served calls by method (all codes) from its /metrics.
var grpcCallsLine = regexp.MustCompile(`^autoscaler_cloudscale_grpc_calls_total\{([^}]*)\} (\S+)$`)
var methodLabel = regexp.MustCompile(`method="([^"]+)"`)

func providerCalls(healthPort int) (map[string]float64, error) {
	raw, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", healthPort))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := grpcCallsLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		mm := methodLabel.FindStringSubmatch(m[1])
		v, err := strconv.ParseFloat(m[2], 64)
		if mm != nil && err == nil {
			out[mm[1]] += v
		}
	}
	return out, nil
}

func httpGet(url string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return body, err
}

// procCPU is a process's user + system CPU seconds so far (0 if it cannot be read).
func procCPU(p *proc) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// procMem is a process's VmRSS and RssAnon in MiB.
func procMem(p *proc) (rss, anon float64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			rss = math.Round(kb/1024*10) / 10
		case "RssAnon":
			anon = math.Round(kb/1024*10) / 10
		}
	}
	return rss, anon, nil
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func nearestRank(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func median(v []float64) float64 {
	c := append([]float64{}, v...)
	sort.Float64s(c)
	return nearestRank(c, 0.5)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*100) / 100
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func formatCalls(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return m[keys[a]] > m[keys[b]] || m[keys[a]] == m[keys[b]] && keys[a] < keys[b] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %g", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number", name, v)
	}
	return n, nil
}

func envInts(name string, def []int) ([]int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s=%q: want positive numbers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out, nil
}

func runOutput(bin string, args ...string) (string, error) {
	b, err := exec.Command(bin, args...).Output()
	return strings.TrimSpace(string(b)), err
}
