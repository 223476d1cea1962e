package e2e

// Scenario 9: chaos under the real Cluster Autoscaler, from a printed seed.
//
// CA 1.36.1 runs while a Deployment's replicas walk at random between 0 and 50;
// the provider is killed with kill -9 at random moments and started again; the
// simulated API answers 5xx in bursts, slowly, with lost responses, with a 200
// page that is not JSON and with 429 + Retry-After; one flavor runs out of
// capacity for a while. Storms alternate with quiet spells (faults off, no
// kills, replicas held).
//
// Checked all the time (every half second, on the simulator's servers): never
// more servers in a group than its max; no foreign server touched. After each
// quiet spell: per group, servers == CA's target (its status ConfigMap, which
// reads our TargetSize) == joined Nodes. At the end: replicas 0, faults off,
// back to no server of the cluster, and none left that is not a foreign one.
// A kind of fault that met no request in the storms (creates can all be held
// while lists fail, past the end of the scarce flavor's outage) gets a round of
// its own from zero before the end, so every kind, the capacity outage
// included, is proven to have reached the provider.
//
//   E2E_CHAOS_SEED     replay a run (the seed of the replica walk, the kills and the faults)
//   E2E_CHAOS_SECONDS  seconds of storm in total (default 120, in three storms)
//
// The printed summary gives the seed, the faults injected and fired by kind, the
// kills, the replica walk, each quiet spell's convergence time, the number of
// invariant checks and the violations (which must be none).

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var chaosGroups = []groupSpec{
	{Name: "a", Flavor: "flex-8-2", Max: 6},
	{Name: "b", Flavor: "flex-16-4", Max: 4},
}

// The flavor that runs out of capacity for a while (group a's).
const chaosScarceFlavor = "flex-8-2"

type chaosRun struct {
	s   *scenario
	rng *rand.Rand

	mu         sync.Mutex
	checks     int
	violations []string
	injected   map[string]int    // rules added (or outages begun) by kind
	fired      map[string]int    // requests a rule of the kind answered, read before each reset
	ruleKind   map[string]string // sim rule id → kind
	kills      int
	walk       []int
	quiet      []string
}

func (c *chaosRun) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := fmt.Sprintf(format, args...)
	for _, x := range c.violations {
		if x == v {
			return
		}
	}
	c.violations = append(c.violations, v)
	c.s.t.Logf("VIOLATION: %s", v)
}

func (c *chaosRun) checked(n int) {
	c.mu.Lock()
	c.checks += n
	c.mu.Unlock()
}

func chaosSeed() uint64 {
	if v := os.Getenv("E2E_CHAOS_SEED"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n
		}
	}
	return uint64(time.Now().UnixNano()) & 0xffffffff
}

func chaosSeconds() int {
	if v := os.Getenv("E2E_CHAOS_SECONDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return 120
}

func TestScenario9Chaos(t *testing.T) {
	seed := chaosSeed()
	storm := chaosSeconds()
	// startupGrace covers the longest request a killed process may still have at the API
	// (latency below is at most 4 s; apiTimeout 5 s).
	// CA backs a group off for 5 minutes after a failed scale-up by default: as long as the whole
	// run. Shorter backoffs let the group whose flavor ran out come back within the run.
	s := newScenario(t, "9 chaos under the real CA", scenarioOpts{groups: chaosGroups, startupGrace: "6s", settings: "apiTimeout: 5s\n",
		caExtra: []string{"--initial-node-group-backoff-duration=20s", "--max-node-group-backoff-duration=1m"}})
	c := &chaosRun{s: s, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		injected: map[string]int{}, fired: map[string]int{}, ruleKind: map[string]string{}}
	s.logf("chaos: seed %d (replay with E2E_CHAOS_SEED=%d), %d s of storm", seed, seed, storm)
	s.sim.Control(t, "POST", "/_sim/faults", map[string]any{"seed": seed & 0x7fffffff})

	foreignUUIDs := s.seedForeign()
	foreignBefore := snapshotForeign(mustServers(t, s), foreignUUIDs)
	maxOf := map[string]int{}
	for _, g := range chaosGroups {
		maxOf[g.Name] = g.Max
	}

	// ---- the invariants that hold all the time
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			c.watchOnce(maxOf, foreignBefore, foreignUUIDs)
			select {
			case <-stopWatch:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	defer func() {
		select {
		case <-stopWatch:
		default:
			close(stopWatch)
		}
		<-watchDone
	}()

	s.startLoop()
	s.deploy(deployment{Name: "chaos", Replicas: 0, CPU: "500m", Memory: "128Mi"})

	// ---- three storms, each followed by a quiet spell
	replicas := 0
	const storms = 3
	stormLen := time.Duration(storm/storms) * time.Second
	for i := 0; i < storms; i++ {
		start := time.Now()
		// One or two kills at random moments of the storm, at least 10 s apart.
		var kills []time.Duration
		for k := 0; k < 1+c.rng.IntN(2); k++ {
			at := time.Duration(c.rng.Int64N(int64(stormLen)))
			if len(kills) == 0 || at-kills[len(kills)-1] >= 10*time.Second {
				kills = append(kills, at)
			}
		}
		// The scarce flavor: out of capacity for the whole first storm (its scale-up from zero meets
		// it, however long failing lists hold the creates back), for a while in later ones at random.
		var capFrom, capTo time.Duration = -1, -1
		if i == 0 {
			capFrom, capTo = 0, stormLen
		} else if c.rng.IntN(2) == 0 {
			capFrom = time.Duration(c.rng.Int64N(int64(stormLen / 2)))
			capTo = capFrom + time.Duration(15+c.rng.IntN(20))*time.Second
		}
		capOn := false
		if i == 0 {
			// The first storm opens with the faults a create meets, then pods to create servers for.
			c.injectKind("lost response")
			c.injectKind("200 page, not JSON")
		}
		first := true
		for time.Since(start) < stormLen {
			el := time.Since(start)
			if len(kills) > 0 && el >= kills[0] {
				kills = kills[1:]
				c.killAndRestart()
			}
			if !capOn && capFrom >= 0 && el >= capFrom && el < capTo {
				c.outage(true)
				capOn = true
				s.t.Logf("chaos: %s out of capacity for %s", chaosScarceFlavor, capTo-capFrom)
			} else if capOn && el >= capTo {
				c.outage(false)
				capOn = false
			}
			switch r := c.rng.Float64(); {
			case first:
				// Each storm opens with pods to create servers for (the first one from zero).
				replicas = c.setReplicas(replicas, 15+c.rng.IntN(36))
			case r < 0.12:
				replicas = c.setReplicas(replicas, c.walk1(replicas))
			case r < 0.4:
				c.injectFault()
			}
			first = false
			time.Sleep(time.Duration(500+c.rng.IntN(1000)) * time.Millisecond) // the storm's pace, not an ordering
		}
		for range kills { // a kill the storm's pace stepped past still happens, at its end
			c.killAndRestart()
		}
		c.quietSpell(i + 1)
	}

	// ---- a kind that reached no request in the storms (a lost create answer needs a create,
	// and failing lists or the startup grace can hold every create of a storm until its quiet
	// spell) gets a round of its own from zero, where CA must create servers.
	c.makeUp()

	// ---- the end: no pods, no faults, back to zero servers and nothing left behind
	c.resetFaults()
	if err := s.kube.scaleDeployment(s.ns, "chaos", 0); err != nil {
		s.fatalf("%v", err)
	}
	c.walk = append(c.walk, 0)
	down := s.waitNoServers(6 * time.Minute)
	close(stopWatch)
	<-watchDone
	all := mustServers(t, s)
	foreign := map[string]bool{}
	for _, u := range foreignUUIDs {
		foreign[u] = true
	}
	for _, v := range all {
		if !foreign[v.UUID] {
			c.violate("at the end: server %s (%s, tags %v) is left in the cloud", v.Name, v.UUID, v.Tags)
		}
	}
	c.checked(1)
	s.checkForeign(foreignBefore, foreignUUIDs, "at the end")
	js := s.joiner.stats()
	for g, n := range js.PeakBy {
		c.checked(1)
		if n > maxOf[g] {
			c.violate("group %s: the joiner saw %d servers at once, above max %d", g, n, maxOf[g])
		}
	}
	c.report(seed, down, len(js.Seen))
	// The run did what it is for: every kind of fault reached a request, and the provider was killed.
	for _, k := range chaosMustFire {
		if c.fired[k] == 0 {
			s.errorf("chaos (seed %d): fault kind %q was injected %d times but answered no request", seed, k, c.injected[k])
		}
	}
	if c.kills == 0 {
		s.errorf("chaos (seed %d): the provider was never killed", seed)
	}
	if len(c.violations) > 0 {
		s.errorf("chaos (seed %d): %d invariant violations:\n  %s", seed, len(c.violations), strings.Join(c.violations, "\n  "))
	}
}

// watchOnce checks the invariants that hold at every moment, on one listing of the simulator.
func (c *chaosRun) watchOnce(maxOf map[string]int, foreignBefore map[string]foreign, foreignUUIDs []string) {
	all, err := simServers(c.s.sim)
	if err != nil {
		return // the simulator is busy; the next look counts
	}
	per := map[string]int{}
	for _, v := range all {
		if v.Tags[clusterTag] == c.s.cluster {
			per[v.Tags[groupTag]]++
		}
	}
	for g, m := range maxOf {
		if per[g] > m {
			c.violate("group %s has %d servers in the cloud, above its max %d", g, per[g], m)
		}
	}
	for g := range per {
		if _, ok := maxOf[g]; !ok {
			c.violate("servers of the cluster in group %q, which is not configured", g)
		}
	}
	after := snapshotForeign(all, foreignUUIDs)
	for u, b := range foreignBefore {
		if a, ok := after[u]; !ok || a != b {
			c.violate("foreign server %s was touched: %+v -> %+v", b.Name, b, a)
		}
	}
	c.checked(len(maxOf) + len(foreignBefore) + 1)
}

func (c *chaosRun) count(kind string, n int) {
	c.mu.Lock()
	c.injected[kind] += n
	c.mu.Unlock()
}

// walk1 is the replica walk's next step: anywhere in 0..50 half the time, else up or down by at most 20.
func (c *chaosRun) walk1(cur int) int {
	if c.rng.IntN(2) == 0 {
		return c.rng.IntN(51)
	}
	return min(50, max(0, cur+c.rng.IntN(41)-20))
}

func (c *chaosRun) setReplicas(cur, next int) int {
	if err := c.s.kube.scaleDeployment(c.s.ns, "chaos", next); err != nil {
		c.s.t.Logf("chaos: scaling to %d: %v", next, err)
		return cur
	}
	c.mu.Lock()
	c.walk = append(c.walk, next)
	c.mu.Unlock()
	c.s.t.Logf("chaos: replicas %d -> %d", cur, next)
	return next
}

// outage begins (and counts) or ends the scarce flavor's capacity outage.
func (c *chaosRun) outage(on bool) {
	out := []map[string]string{}
	if on {
		out = append(out, map[string]string{"flavor": chaosScarceFlavor, "zone": "lpg1"})
		c.count("capacity outage", 1)
	}
	c.s.sim.Control(c.s.t, "POST", "/_sim/faults", map[string]any{"outOfCapacity": out})
}

func (c *chaosRun) killAndRestart() {
	pr := c.s.provider.current()
	pr.Kill9()
	c.mu.Lock()
	c.kills++
	c.mu.Unlock()
	pause := time.Duration(c.rng.IntN(2000)) * time.Millisecond
	time.Sleep(pause) // a random moment, not an ordering
	if err := c.s.provider.start(); err != nil {
		c.s.fatalf("provider restart after kill -9: %v", err)
	}
	c.s.t.Logf("chaos: kill -9 of %s, restarted after %s", pr.name, pause)
}

// The fault kinds made of simulator rules, injected at random in the storms.
var chaosKinds = []string{"5xx burst", "latency", "lost response", "200 page, not JSON", "429 + Retry-After"}

// The kinds that must have met a request by the end: the rule kinds and the capacity outage
// (met when a create of the scarce flavor is refused).
var chaosMustFire = append(append([]string{}, chaosKinds...), "capacity outage")

// kindsNone lists those of kinds that a count (injections, or requests answered) has at zero.
func (c *chaosRun) kindsNone(count map[string]int, kinds []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var none []string
	for _, k := range kinds {
		if count[k] == 0 {
			none = append(none, k)
		}
	}
	return none
}

// injectFault adds the rules of one fault kind: a kind not injected yet if there is one, else a random one.
func (c *chaosRun) injectFault() {
	fresh := c.kindsNone(c.injected, chaosKinds)
	if len(fresh) > 0 {
		c.injectKind(fresh[c.rng.IntN(len(fresh))])
		return
	}
	c.injectKind(chaosKinds[c.rng.IntN(len(chaosKinds))])
}

// injectKind adds the rules of one fault kind; every rule has a count, so it ends by itself.
func (c *chaosRun) injectKind(kind string) {
	rng := c.rng
	var rules []map[string]any
	switch kind {
	case "5xx burst":
		rules = append(rules, map[string]any{"path": "/v1/*", "action": "error", "status": []int{500, 502, 503, 504}[rng.IntN(4)], "count": 3 + rng.IntN(10)})
	case "latency":
		rules = append(rules, map[string]any{"path": "/v1/*", "latencyMs": 300 + rng.IntN(3700), "probability": 0.5, "count": 10 + rng.IntN(20)})
	case "lost response":
		// The request takes effect, its answer is lost: a create (and sometimes a delete).
		rules = append(rules, map[string]any{"method": "POST", "path": "/v1/servers", "action": "lost-response", "mode": []string{"502", "drop"}[rng.IntN(2)], "count": 1 + rng.IntN(3)})
		if rng.IntN(3) == 0 {
			rules = append(rules, map[string]any{"method": "DELETE", "path": "/v1/servers/:uuid", "action": "lost-response", "mode": []string{"502", "drop"}[rng.IntN(2)], "count": 1 + rng.IntN(2)})
		}
	case "200 page, not JSON":
		// A captive portal's page where the list belongs (and sometimes as a create's answer, the server made).
		rules = append(rules, map[string]any{"method": "GET", "path": "/v1/servers", "action": "error", "status": 200, "count": 1 + rng.IntN(3)})
		if rng.IntN(3) == 0 {
			rules = append(rules, map[string]any{"method": "POST", "path": "/v1/servers", "action": "error", "status": 200, "commit": true, "count": 1})
		}
	case "429 + Retry-After":
		rules = append(rules, map[string]any{"path": "/v1/*", "action": "error", "status": 429, "retryAfterSeconds": 1 + rng.IntN(3), "count": 2 + rng.IntN(6)})
	default:
		c.s.fatalf("chaos: unknown fault kind %q", kind)
	}
	body := c.s.sim.Control(c.s.t, "POST", "/_sim/faults", map[string]any{"addRules": rules})
	var snap struct {
		Rules []struct{ ID string }
	}
	if err := json.Unmarshal(body, &snap); err == nil && len(snap.Rules) >= len(rules) {
		c.mu.Lock()
		for _, r := range snap.Rules[len(snap.Rules)-len(rules):] {
			c.ruleKind[r.ID] = kind
		}
		c.mu.Unlock()
	}
	c.count(kind, 1)
}

// makeUp injects, alone, every kind of fault that no request met in the storms, scales from
// zero so that CA creates servers, waits until each has met a request, then has a quiet spell.
func (c *chaosRun) makeUp() {
	s := c.s
	missing := c.kindsNone(c.fired, chaosMustFire)
	if len(missing) == 0 {
		return
	}
	s.logf("chaos: no request met %v in the storms: a round for them alone, from zero", missing)
	if err := s.kube.scaleDeployment(s.ns, "chaos", 0); err != nil {
		s.fatalf("%v", err)
	}
	s.waitNoServers(6 * time.Minute)
	replicas := 15 + c.rng.IntN(16)
	for _, k := range missing {
		if k == "capacity outage" {
			// 50 pods need more than group b's max of nodes, so CA must try group a, whose flavor
			// is out: its create is refused.
			c.outage(true)
			replicas = 50
			continue
		}
		c.injectKind(k)
	}
	c.setReplicas(0, replicas)
	err := waitFor(fmt.Sprintf("a request meets each of %v", missing), s.ca.proc, 3*time.Minute, time.Second, func() (bool, error) {
		now := c.firedNow()
		for _, k := range missing {
			if now[k] == 0 {
				return false, fmt.Errorf("%q met no request yet", k)
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Logf("chaos: %v", err) // reported below as a kind that met no request
	}
	c.quietSpell(4)
}

// firedNow is how often each kind's rules have answered requests since the last reset.
func (c *chaosRun) firedNow() map[string]int {
	body := c.s.sim.Control(c.s.t, "GET", "/_sim/faults", nil)
	var snap struct {
		Rules []struct {
			ID    string
			Fired int
		}
		CapacityRefusals int
	}
	out := map[string]int{}
	if err := json.Unmarshal(body, &snap); err == nil {
		c.mu.Lock()
		for _, r := range snap.Rules {
			out[c.ruleKind[r.ID]] += r.Fired
		}
		c.mu.Unlock()
		out["capacity outage"] = snap.CapacityRefusals
	}
	return out
}

// resetFaults turns every fault off, first adding up how often each kind's rules fired.
func (c *chaosRun) resetFaults() {
	body := c.s.sim.Control(c.s.t, "GET", "/_sim/faults", nil)
	var snap struct {
		Rules []struct {
			ID    string
			Fired int
		}
		CapacityRefusals int
	}
	if err := json.Unmarshal(body, &snap); err == nil {
		c.mu.Lock()
		for _, r := range snap.Rules {
			c.fired[c.ruleKind[r.ID]] += r.Fired
		}
		c.fired["capacity outage"] += snap.CapacityRefusals
		c.mu.Unlock()
	}
	c.s.sim.Control(c.s.t, "POST", "/_sim/reset-faults", map[string]any{})
}

// quietSpell: faults off, no kills, replicas held; then, per group, servers == CA's target ==
// joined Nodes, the same three looks in a row two seconds apart.
func (c *chaosRun) quietSpell(n int) {
	s := c.s
	c.resetFaults()
	t0 := time.Now()
	stable := 0
	last := ""
	err := waitFor(fmt.Sprintf("quiet spell %d: servers == CA's target == joined nodes", n), s.ca.proc, 3*time.Minute, 2*time.Second, func() (bool, error) {
		text, err := statusText(s.kube)
		if err != nil || text == "" {
			stable = 0
			return false, fmt.Errorf("no CA status: %v", err)
		}
		st, err := parseStatus(text)
		if err != nil {
			stable = 0
			return false, err
		}
		target := map[string]int{}
		for _, g := range st.NodeGroups {
			target[g.Name] = g.Health.CloudProviderTarget
		}
		servers := map[string]int{}
		for _, v := range s.ourServers() {
			servers[v.Tags[groupTag]]++
		}
		nodes := map[string]int{}
		for _, nd := range s.joinedNodes() {
			nodes[nd.Metadata.Labels["autoscaler-cloudscale/node-group"]]++
		}
		var parts []string
		ok := true
		for _, g := range chaosGroups {
			parts = append(parts, fmt.Sprintf("%s: servers %d, target %d, nodes %d", g.Name, servers[g.Name], target[g.Name], nodes[g.Name]))
			if servers[g.Name] != target[g.Name] || servers[g.Name] != nodes[g.Name] {
				ok = false
			}
		}
		last = strings.Join(parts, "; ")
		if !ok {
			stable = 0
			return false, fmt.Errorf("%s", last)
		}
		stable++
		return stable >= 3, nil
	})
	c.checked(1)
	took := time.Since(t0)
	if err != nil {
		c.violate("quiet spell %d did not converge in 3m: %s", n, last)
		c.mu.Lock()
		c.quiet = append(c.quiet, fmt.Sprintf("%d: not converged (%s)", n, last))
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.quiet = append(c.quiet, fmt.Sprintf("%d: converged in %.0fs (%s)", n, took.Seconds(), last))
	c.mu.Unlock()
	s.t.Logf("chaos: quiet spell %d converged in %.1fs: %s", n, took.Seconds(), last)
}

func (c *chaosRun) report(seed uint64, down time.Duration, created int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kinds := make([]string, 0, len(c.injected))
	for k := range c.injected {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		if k == "capacity outage" {
			parts = append(parts, fmt.Sprintf("%s %d (creates refused %d)", k, c.injected[k], c.fired[k]))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d (requests answered by it %d)", k, c.injected[k], c.fired[k]))
	}
	s := c.s
	s.logf("chaos: seed %d; faults by kind: %s; kill -9 %d", seed, strings.Join(parts, ", "), c.kills)
	s.logf("chaos: replica walk %v; %d servers created over the run", c.walk, created)
	for _, q := range c.quiet {
		s.logf("chaos: quiet spell %s", q)
	}
	s.logf("chaos: back to zero servers %.0fs after replicas 0; %d invariant checks, %d violations", down.Seconds(), c.checks, len(c.violations))
}
