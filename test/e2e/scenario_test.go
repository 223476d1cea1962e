package e2e

// One scenario's world on the shared control plane: its own namespace, a
// fresh simulator, our provider with the scenario's node groups, the joiner,
// and a cluster-autoscaler run. Cleanup returns the cluster to no Nodes and no
// pods; on failure it first prints what is needed to debug without a re-run.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
)

type scenarioOpts struct {
	groups       []groupSpec
	caVersion    string   // "1.36.1" (default) or "1.34.1"
	expander     string   // default least-waste
	startupGrace string   // provider startupGrace ("" = its default)
	settings     string   // more top-level lines of the provider's config.yaml
	inContainer  bool     // the provider runs as deploy/'s Deployment in its image (podplay_test.go)
	caExtra      []string // more cluster-autoscaler flags
}

type scenario struct {
	t        *testing.T
	name     string
	cluster  string
	ns       string
	dir      string
	cp       *controlPlane
	kube     *kube
	sim      *harness.Sim
	bin      string
	provider *provider
	ca       *autoscaler
	joiner   *joiner
	opts     scenarioOpts
	started  time.Time
	report   *report
	deploys  []string
	firstBad string // diagnostics taken at the first failed assertion
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

func newScenario(t *testing.T, name string, opts scenarioOpts) *scenario {
	t.Helper()
	rep := &report{name: name}
	start := time.Now()
	suite.mu.Lock()
	suite.reports = append(suite.reports, rep)
	suite.mu.Unlock()
	t.Cleanup(func() {
		rep.wall = time.Since(start)
		rep.failed = t.Failed()
	})
	cp := controlPlaneFor(t)
	start = time.Now() // the scenario's wall time leaves out the shared control plane's start
	if opts.caVersion == "" {
		opts.caVersion = "1.36.1"
	}
	if opts.expander == "" {
		opts.expander = "least-waste"
	}
	slug := strings.Trim(nonName.ReplaceAllString(strings.ToLower(name), "-"), "-")
	s := &scenario{t: t, name: name, cp: cp, kube: cp.kube, opts: opts, started: start, report: rep,
		cluster: "e2e" + strings.SplitN(slug, "-", 2)[0], ns: "e2e-" + slug,
		dir: filepath.Join(suite.runDir, slug)}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.bin = harness.Binary(t)
	if err := s.kube.createNamespace(s.ns); err != nil {
		t.Fatalf("namespace %s: %v", s.ns, err)
	}
	s.sim = harness.StartSim(t, s.bin, "--boot-seconds", "2")
	// Registered after StartSim, so it runs before the simulator stops.
	t.Cleanup(s.cleanup)

	if err := writeFile(filepath.Join(s.dir, "talos-worker.yaml"), talosWorker); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(s.dir, "config.yaml")
	if err := writeFile(cfg, providerConfig(s.cluster, opts.groups, opts.startupGrace, opts.settings)); err != nil {
		t.Fatal(err)
	}
	s.provider = &provider{bin: s.bin, dir: s.dir, config: cfg, sim: s.sim, certs: cp.certs,
		addr: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), healthPort: harness.FreePort(t)}
	if opts.inContainer {
		pp := newPodPlay(s)
		if err := pp.prepare(s, providerConfig(s.cluster, opts.groups, opts.startupGrace, opts.settings), talosWorker); err != nil {
			s.fatalf("the provider's Deployment for podman kube play: %v", err)
		}
		s.provider.pod, s.provider.addr, s.provider.healthPort = pp, pp.addr, pp.health
		s.logf("provider as deploy/'s Deployment (kubectl kustomize deploy/, podman kube play): %s", strings.Join(pp.log, "; "))
	}
	s.joiner = startJoiner(s.kube, s.sim, s.cluster)
	return s
}

// startLoop starts the provider and then CA.
func (s *scenario) startLoop() {
	s.t.Helper()
	if err := s.provider.start(); err != nil {
		s.fatalf("provider: %v", err)
	}
	s.startCA()
}

func (s *scenario) startCA() {
	s.t.Helper()
	cc := harness.CloudConfig(s.t, s.dir, "cloud-config.yaml", s.provider.addr, s.cp.certs, "10s")
	port := harness.FreePort(s.t)
	bin := suite.bins["cluster-autoscaler-"+s.opts.caVersion]
	if _, err := os.Stat(bin); err != nil {
		s.fatalf("cluster-autoscaler %s is not built (run scripts/e2e-build.sh): %v", s.opts.caVersion, err)
	}
	kubeconfig, err := s.cp.caKubeconfig(s.dir)
	if err != nil {
		s.fatalf("cluster-autoscaler %s: %v", s.opts.caVersion, err)
	}
	ca, err := startAutoscaler(s.dir, bin, s.opts.caVersion, append(caFlags(kubeconfig, cc, port, s.opts.expander), s.opts.caExtra...), port)
	s.ca = ca
	if err != nil {
		s.fatalf("cluster-autoscaler %s: %v", s.opts.caVersion, err)
	}
}

// logf logs to the test and to the closing report.
func (s *scenario) logf(format string, args ...any) {
	s.t.Helper()
	s.t.Logf(format, args...)
	s.report.add(format, args...)
}

// ---------------------------------------------------------------- cleanup

// errorf records a failed assertion; the first one also takes the diagnostics
// at that moment (the cleanup prints them, and the state at the end).
func (s *scenario) errorf(format string, args ...any) {
	s.t.Helper()
	if s.firstBad == "" {
		s.firstBad = s.diagnostics("at the first failure")
	}
	s.t.Errorf(format, args...)
}

// fatalf is errorf, then stops the scenario.
func (s *scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.errorf(format, args...)
	s.t.FailNow()
}

func (s *scenario) cleanup() {
	if s.t.Failed() {
		if s.firstBad != "" {
			s.t.Log(s.firstBad)
		}
		s.t.Log(s.diagnostics("at the end"))
	}
	s.measure()
	if s.ca != nil {
		s.ca.Stop(10 * time.Second)
		// CA carries on after a refused request; the refusal still means deploy/'s RBAC is short.
		if lines := forbidden(s.ca.logPath); len(lines) > 0 {
			s.t.Errorf("the apiserver refused CA (ServiceAccount %s/%s, RBAC from deploy/) %d kinds of request:\n%s", caNamespace, caServiceAccount, len(lines), strings.Join(lines, "\n"))
		}
	}
	if s.provider != nil {
		s.provider.stop()
	}
	// Pods first (kwok finalizes them on their nodes), then the servers; the joiner removes their Nodes.
	for _, d := range s.deploys {
		if err := s.kube.deleteDeployment(s.ns, d); err != nil {
			s.t.Errorf("cleanup: delete deployment %s: %v", d, err)
		}
	}
	if s.joiner == nil {
		return
	}
	err := waitFor("cleanup: pods gone", nil, 2*time.Minute, time.Second, func() (bool, error) {
		pods, err := s.kube.pods(s.ns, "")
		return err == nil && len(pods) == 0, err
	})
	if err != nil {
		s.t.Errorf("%v", err)
	}
	if servers, err := simServers(s.sim, clusterTag+"="+s.cluster); err == nil {
		for _, v := range servers {
			s.sim.Do("DELETE", "/_sim/servers/"+v.UUID, nil)
		}
	}
	err = waitFor("cleanup: joined nodes gone", nil, time.Minute, 500*time.Millisecond, func() (bool, error) {
		nodes, err := s.kube.nodes(joinedLabel + "=true")
		return err == nil && len(nodes) == 0, err
	})
	if err != nil {
		s.t.Errorf("%v", err)
	}
	s.joiner.stop()
}

// measure adds CA's loop duration and the provider's calls per loop to the report.
func (s *scenario) measure() {
	if s.ca != nil {
		if text, err := s.ca.metrics(); err == nil {
			h := functionDuration(text, "main")
			s.logf("CA %s main loop (cluster_autoscaler_function_duration_seconds{function=main}): %d loops, mean %.3fs, p50 <= %.3gs, p90 <= %.3gs", s.ca.version, int(h.count), h.mean(), h.quantile(0.5), h.quantile(0.9))
			for _, fn := range []string{"scaleUp", "scaleDown", "updateClusterState"} {
				if f := functionDuration(text, fn); f.count > 0 {
					s.logf("CA %s %s: %d calls, mean %.3fs", s.ca.version, fn, int(f.count), f.mean())
				}
			}
		}
	}
	if s.provider != nil && len(s.provider.procs) > 0 && s.provider.logLevel == "" {
		s.logf("provider: %s", s.provider.calls())
	}
}

// diagnostics is everything needed to debug a failed scenario without a re-run.
func (s *scenario) diagnostics(when string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n======== diagnostics for %s, %s (logs in %s) ========\n", s.name, when, s.dir)
	if text, err := statusText(s.kube); err != nil {
		fmt.Fprintf(&b, "--- CA status ConfigMap: %v\n", err)
	} else {
		fmt.Fprintf(&b, "--- CA status ConfigMap (kube-system/cluster-autoscaler-status):\n%s\n", text)
	}
	if evs, err := s.kube.events(s.ns); err == nil {
		fmt.Fprintf(&b, "--- CA's scale-up reasons (events in %s):\n", s.ns)
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Source.Component != "cluster-autoscaler" || seen[e.Reason+e.Message] {
				continue
			}
			seen[e.Reason+e.Message] = true
			fmt.Fprintf(&b, "  %s %s/%s (x%d): %s\n", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Count, e.Message)
		}
	}
	if evs, err := s.kube.events("default"); err == nil {
		fmt.Fprintf(&b, "--- CA's node events (scale-down reasons):\n")
		n := 0
		for _, e := range evs {
			if e.Source.Component == "cluster-autoscaler" && n < 30 {
				fmt.Fprintf(&b, "  %s %s/%s: %s\n", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
				n++
			}
		}
	}
	if s.ca != nil {
		fmt.Fprintf(&b, "--- cluster-autoscaler %s log (last 80 of %s; exited=%v):\n%s\n", s.ca.version, s.ca.logPath, s.ca.Exited(), s.ca.Tail(80))
	}
	if s.provider != nil {
		for _, pr := range s.provider.procs {
			fmt.Fprintf(&b, "--- provider %s log without the per-call debug lines (last 80; full log %s; exited=%v %v):\n%s\n",
				pr.name, pr.logPath, pr.Exited(), pr.err, logTail(pr.logPath, 80, func(l string) bool { return !callLine.MatchString(l) }))
		}
		fmt.Fprintf(&b, "--- provider calls: %s\n", s.provider.calls())
	}
	if servers, err := simServers(s.sim); err == nil {
		fmt.Fprintf(&b, "--- simulator servers (%d):\n", len(servers))
		for _, v := range servers {
			fmt.Fprintf(&b, "  %s %s %s flavor=%s cluster=%s group=%s created=%s\n", v.UUID, v.Name, v.Status, v.Flavor.Slug, v.Tags[clusterTag], v.Tags[groupTag], v.CreatedAt)
		}
	} else {
		fmt.Fprintf(&b, "--- simulator servers: %v\n", err)
	}
	if st, _, err := s.sim.Do("GET", "/_sim/state?servers=0", nil); err == nil {
		fmt.Fprintf(&b, "--- simulator counters/quota/faults: %s\n", st)
	}
	if s.joiner != nil {
		js := s.joiner.stats()
		fmt.Fprintf(&b, "--- joiner: %d ticks, %d servers seen, peak %d %v, join errors %v, last error %v\n", js.Ticks, len(js.Seen), js.Peak, js.PeakBy, js.JoinErrs, js.LastErr)
	}
	if nodes, err := s.kube.nodes(""); err == nil {
		fmt.Fprintf(&b, "--- nodes (%d):\n", len(nodes))
		for _, n := range nodes {
			fmt.Fprintf(&b, "  %s ready=%v providerID=%s taints=%v allocatable=%v\n", n.Metadata.Name, n.ready(), n.Spec.ProviderID, n.Spec.Taints, n.Status.Allocatable)
		}
	}
	if pods, err := s.kube.pods(s.ns, ""); err == nil {
		fmt.Fprintf(&b, "--- pods in %s: %v\n", s.ns, podPhases(pods))
	}
	if gone := s.cp.exited(); len(gone) > 0 {
		fmt.Fprintf(&b, "--- control-plane processes that exited: %v\n", gone)
	}
	b.WriteString("======== end of diagnostics ========\n")
	return b.String()
}

// logTail returns the last n lines of a log file that keep() accepts.
func logTail(path string, n int, keep func(string) bool) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && keep(l) {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// ---------------------------------------------------------------- reading the world

// ourServers lists the scenario cluster's servers in the simulator.
func (s *scenario) ourServers() []simServer {
	s.t.Helper()
	v, err := simServers(s.sim, clusterTag+"="+s.cluster)
	if err != nil {
		s.fatalf("simulator: %v", err)
	}
	return v
}

func (s *scenario) joinedNodes() []node {
	s.t.Helper()
	nodes, err := s.kube.nodes(joinedLabel + "=true")
	if err != nil {
		s.fatalf("nodes: %v", err)
	}
	return nodes
}

func (s *scenario) phases(app string) map[string]int {
	s.t.Helper()
	pods, err := s.kube.pods(s.ns, "app="+app)
	if err != nil {
		s.fatalf("pods: %v", err)
	}
	return podPhases(pods)
}

func (s *scenario) deploy(d deployment) time.Time {
	s.t.Helper()
	d.Namespace = s.ns
	if err := s.kube.createDeployment(d); err != nil {
		s.fatalf("deployment %s: %v", d.Name, err)
	}
	s.deploys = append(s.deploys, d.Name)
	return time.Now()
}

// waitRunning waits until `want` pods of app run, failing after timeout.
func (s *scenario) waitRunning(app string, want int, timeout time.Duration) time.Duration {
	s.t.Helper()
	t0 := time.Now()
	last := ""
	err := waitFor(fmt.Sprintf("%d pods of %s Running", want, app), s.ca.proc, timeout, time.Second, func() (bool, error) {
		ph := s.phases(app)
		if line := fmt.Sprint(ph); line != last {
			s.t.Logf("%6.1fs %s pods: %s; servers %d, joined nodes %d", time.Since(t0).Seconds(), app, line, len(s.ourServers()), len(s.joinedNodes()))
			last = line
		}
		return ph["Running"] == want, fmt.Errorf("pods %v", ph)
	})
	if err != nil {
		s.fatalf("%v", err)
	}
	return time.Since(t0)
}

// waitPending waits until `want` pods of app exist and are all Pending (nothing to run them yet).
func (s *scenario) waitPending(app string, want int, timeout time.Duration) {
	s.t.Helper()
	err := waitFor(fmt.Sprintf("%d pods of %s Pending", want, app), nil, timeout, 500*time.Millisecond, func() (bool, error) {
		ph := s.phases(app)
		return ph["Pending"] == want, fmt.Errorf("pods %v", ph)
	})
	if err != nil {
		s.fatalf("%v", err)
	}
}

// waitNoServers waits until the cluster has no servers in the simulator and no joined Nodes.
func (s *scenario) waitNoServers(timeout time.Duration) time.Duration {
	s.t.Helper()
	t0 := time.Now()
	last := -1
	err := waitFor("scale-down to no servers", s.ca.proc, timeout, time.Second, func() (bool, error) {
		n := len(s.ourServers())
		nodes := len(s.joinedNodes())
		if n != last {
			s.t.Logf("%6.1fs servers %d, joined nodes %d", time.Since(t0).Seconds(), n, nodes)
			last = n
		}
		return n == 0 && nodes == 0, fmt.Errorf("%d servers, %d joined nodes", n, nodes)
	})
	if err != nil {
		s.fatalf("%v", err)
	}
	return time.Since(t0)
}

// waitLoops waits until CA has run n more main loops than `from`.
func (s *scenario) waitLoops(from, n int, timeout time.Duration) {
	s.t.Helper()
	err := waitFor(fmt.Sprintf("%d CA loops", n), s.ca.proc, timeout, time.Second, func() (bool, error) {
		return s.ca.loops() >= from+n, nil
	})
	if err != nil {
		s.fatalf("%v", err)
	}
}

// ---------------------------------------------------------------- the template

// templateNode is the template our binary renders for a group (`template --config FILE GROUP -o json`,
// the same code that answers NodeGroupTemplateNodeInfo), with the simulator's flavors.
func (s *scenario) templateNode(group string) *node {
	s.t.Helper()
	cmd := exec.Command(s.bin, "template", "--config", s.provider.config, group, "--output", "json")
	cmd.Env = append(os.Environ(), "CLOUDSCALE_API_TOKEN=e2e-sim-token", "CLOUDSCALE_API_URL="+s.sim.API)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		s.fatalf("template %s: %v %s", group, err, stderr)
	}
	var n node
	if err := json.Unmarshal(out, &n); err != nil {
		s.fatalf("template %s: %v\n%s", group, err, out)
	}
	return &n
}

// podsPerNode is how many pods of (cpu millis, memory bytes) fit a node's allocatable;
// nodesFor is the node count a first-fit of `pods` identical pods needs: the estimate
// CA's binpacking makes from the template, computed here independently.
func podsPerNode(alloc resources, cpuMillis, memBytes int64) int64 {
	return min(alloc["cpu"]/cpuMillis, alloc["memory"]/memBytes, alloc["pods"])
}

func nodesFor(pods int, perNode int64) int {
	if perNode <= 0 {
		return math.MaxInt32
	}
	return int((int64(pods) + perNode - 1) / perNode)
}

func (s *scenario) templateAllocatable(group string) resources {
	s.t.Helper()
	r, err := nodeResources(s.templateNode(group).Status.Allocatable)
	if err != nil {
		s.fatalf("template %s allocatable: %v", group, err)
	}
	return r
}

// checkMatchesTemplate asserts that every joined Node of a group carries the
// template's labels (but the host name) and taints, and offers at least its allocatable.
func (s *scenario) checkMatchesTemplate(group string) {
	s.t.Helper()
	tmpl := s.templateNode(group)
	talloc, err := nodeResources(tmpl.Status.Allocatable)
	if err != nil {
		s.fatalf("%v", err)
	}
	checked := 0
	for _, n := range s.joinedNodes() {
		if n.Metadata.Labels["autoscaler-cloudscale/node-group"] != group {
			continue
		}
		checked++
		for k, v := range tmpl.Metadata.Labels {
			if k == "kubernetes.io/hostname" {
				continue
			}
			if n.Metadata.Labels[k] != v {
				s.errorf("node %s: label %s=%q, the template has %q", n.Metadata.Name, k, n.Metadata.Labels[k], v)
			}
		}
		if got, want := taintSet(n.Spec.Taints), taintSet(tmpl.Spec.Taints); got != want {
			s.errorf("node %s: taints %s, the template has %s", n.Metadata.Name, got, want)
		}
		alloc, err := nodeResources(n.Status.Allocatable)
		if err != nil {
			s.fatalf("%v", err)
		}
		for _, r := range []string{"cpu", "memory", "pods", "ephemeral-storage"} {
			if alloc[r] < talloc[r] {
				s.errorf("node %s: allocatable %s %d is below the template's %d: CA simulated a node bigger than the one that joined", n.Metadata.Name, r, alloc[r], talloc[r])
			}
		}
	}
	if checked == 0 {
		s.errorf("no joined node of group %s to compare with the template", group)
	}
}

// taintSet renders taints without the ones Kubernetes itself adds and removes.
func taintSet(ts []taint) string {
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") || strings.HasPrefix(t.Key, "ToBeDeletedBy") || strings.HasPrefix(t.Key, "DeletionCandidateOf") {
			continue
		}
		out = append(out, t.String())
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

// scaleUpEvents sums the node counts of CA's TriggeredScaleUp events per group
// ("pod triggered scale-up: [{workers 0->17 (max: 40)}]"), counting each distinct
// group transition once: CA's own estimate, read from the apiserver.
func (s *scenario) scaleUpEvents() map[string]int {
	s.t.Helper()
	evs, err := s.kube.events(s.ns)
	if err != nil {
		s.fatalf("events: %v", err)
	}
	re := regexp.MustCompile(`\{(\S+) (\d+)->(\d+) \(max: \d+\)\}`)
	seen := map[string]bool{}
	out := map[string]int{}
	for _, e := range evs {
		if e.Reason != "TriggeredScaleUp" {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(e.Message, -1) {
			if seen[m[0]] {
				continue
			}
			seen[m[0]] = true
			from, _ := strconv.Atoi(m[2])
			to, _ := strconv.Atoi(m[3])
			out[m[1]] += to - from
		}
	}
	return out
}

// foreign is a server the provider must never touch, as the simulator shows it.
type foreign struct{ UUID, Name, Status, Flavor, Tags string }

func snapshotForeign(servers []simServer, uuids []string) map[string]foreign {
	want := map[string]bool{}
	for _, u := range uuids {
		want[u] = true
	}
	out := map[string]foreign{}
	for _, v := range servers {
		if want[v.UUID] {
			tags, _ := json.Marshal(v.Tags)
			out[v.UUID] = foreign{v.UUID, v.Name, v.Status, v.Flavor.Slug, string(tags)}
		}
	}
	return out
}

// seedForeign seeds servers that are not ours: untagged, another cluster's (same
// group name), and one with our group tag but no cluster tag.
func (s *scenario) seedForeign() []string {
	s.t.Helper()
	body := s.sim.Control(s.t, "POST", "/_sim/servers", []map[string]any{
		{"name": "db-primary", "flavor": "flex-8-2", "zone": "lpg1"},
		{"name": "other-workers-aaaa1111", "flavor": "flex-8-2", "zone": "lpg1", "tags": map[string]string{clusterTag: "other", groupTag: "workers"}},
		{"name": "hand-made-worker", "flavor": "flex-8-2", "zone": "lpg1", "tags": map[string]string{groupTag: "workers"}},
	})
	var r struct{ UUIDs []string }
	if err := json.Unmarshal(body, &r); err != nil || len(r.UUIDs) != 3 {
		s.fatalf("seed foreign servers: %v %s", err, body)
	}
	return r.UUIDs
}

func (s *scenario) checkForeign(before map[string]foreign, uuids []string, when string) {
	s.t.Helper()
	all, err := simServers(s.sim)
	if err != nil {
		s.fatalf("%v", err)
	}
	after := snapshotForeign(all, uuids)
	for u, b := range before {
		if a, ok := after[u]; !ok {
			s.errorf("%s: foreign server %s (%s) is gone", when, b.Name, u)
		} else if a != b {
			s.errorf("%s: foreign server %s changed: %+v -> %+v", when, b.Name, b, a)
		}
	}
}
