package e2e

// The joiner plays the VMs and the cloud controller manager: every 500 ms it
// lists the cluster's servers in the simulator, registers a Node for each
// running server that has none (see joinedNode), and deletes the Nodes it
// registered whose server is gone. It also records what a test asserts on:
// every server it ever saw, the most servers at once, and every server that
// could not have joined.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
)

type joiner struct {
	kube    *kube
	sim     *harness.Sim
	cluster string

	stopCh chan struct{}
	done   chan struct{}

	mu        sync.Mutex
	seen      map[string]simServer // uuid → last view, every server of the cluster ever listed
	peak      int                  // most servers of the cluster listed at once
	peakBy    map[string]int       // per group
	joinErrs  []string
	firstJoin map[string]time.Time // uuid → when its Node was registered
	lastErr   error
	ticks     int
}

func startJoiner(k *kube, sim *harness.Sim, cluster string) *joiner {
	j := &joiner{kube: k, sim: sim, cluster: cluster, stopCh: make(chan struct{}), done: make(chan struct{}),
		seen: map[string]simServer{}, peakBy: map[string]int{}, firstJoin: map[string]time.Time{}}
	go j.loop()
	return j
}

func (j *joiner) stop() {
	select {
	case <-j.stopCh:
	default:
		close(j.stopCh)
	}
	<-j.done
}

func (j *joiner) loop() {
	defer close(j.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		err := j.tick()
		j.mu.Lock()
		j.lastErr = err
		j.ticks++
		j.mu.Unlock()
		select {
		case <-j.stopCh:
			return
		case <-t.C:
		}
	}
}

// servers lists the cluster's servers in the simulator (full views, with user-data).
func (j *joiner) servers() ([]simServer, error) {
	return simServers(j.sim, clusterTag+"="+j.cluster)
}

// simServers lists servers from the simulator's control API, filtered by "key=value" tags (none: all).
func simServers(sim *harness.Sim, tags ...string) ([]simServer, error) {
	path := "/_sim/servers"
	for i, kv := range tags {
		k, v, _ := cutEq(kv)
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		path += sep + "tag:" + url.QueryEscape(k) + "=" + url.QueryEscape(v)
	}
	body, code, err := sim.Do("GET", path, nil)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, code, body)
	}
	var list []simServer
	if err := json.Unmarshal(body, &list); err != nil {
		var wrapped struct{ Servers []simServer }
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil {
			return nil, fmt.Errorf("GET %s: %v", path, err)
		}
		list = wrapped.Servers
	}
	return list, nil
}

func cutEq(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (j *joiner) tick() error {
	servers, err := j.servers()
	if err != nil {
		return err
	}
	nodes, err := j.kube.nodes(joinedLabel + "=true")
	if err != nil {
		return err
	}
	byName := map[string]node{}
	for _, n := range nodes {
		byName[n.Metadata.Name] = n
	}
	live := map[string]bool{}
	perGroup := map[string]int{}
	j.mu.Lock()
	for _, s := range servers {
		j.seen[s.UUID] = s
		perGroup[s.Tags[groupTag]]++
	}
	if len(servers) > j.peak {
		j.peak = len(servers)
	}
	for g, n := range perGroup {
		if n > j.peakBy[g] {
			j.peakBy[g] = n
		}
	}
	j.mu.Unlock()

	var firstErr error
	for _, s := range servers {
		live["cloudscale://"+s.UUID] = true
		if s.Status != "running" {
			continue
		}
		if _, ok := byName[s.Name]; ok {
			continue
		}
		n, err := joinedNode(s)
		if err != nil {
			j.mu.Lock()
			if _, reported := j.firstJoin[s.UUID]; !reported {
				j.joinErrs = append(j.joinErrs, err.Error())
				j.firstJoin[s.UUID] = time.Time{}
			}
			j.mu.Unlock()
			continue
		}
		if err := j.kube.create("/api/v1/nodes", n); err != nil && !isConflict(err) {
			if firstErr == nil {
				firstErr = fmt.Errorf("register node %s: %v", s.Name, err)
			}
			continue
		}
		j.mu.Lock()
		j.firstJoin[s.UUID] = time.Now()
		j.mu.Unlock()
	}
	// The cloud controller manager's part: a Node whose server is gone is deleted.
	for _, n := range nodes {
		if !live[n.Spec.ProviderID] {
			if err := j.kube.delete("/api/v1/nodes/" + n.Metadata.Name); err != nil && !isNotFound(err) && firstErr == nil {
				firstErr = fmt.Errorf("delete node %s: %v", n.Metadata.Name, err)
			}
		}
	}
	return firstErr
}

// stats is a copy of what the joiner recorded.
type joinerStats struct {
	Seen     []simServer // every server of the cluster ever listed, by creation time
	Peak     int
	PeakBy   map[string]int
	JoinErrs []string
	LastErr  error
	Ticks    int
}

func (j *joiner) stats() joinerStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := joinerStats{Peak: j.peak, PeakBy: map[string]int{}, JoinErrs: append([]string{}, j.joinErrs...), LastErr: j.lastErr, Ticks: j.ticks}
	for g, n := range j.peakBy {
		s.PeakBy[g] = n
	}
	for _, v := range j.seen {
		s.Seen = append(s.Seen, v)
	}
	sort.Slice(s.Seen, func(a, b int) bool { return s.Seen[a].CreatedAt < s.Seen[b].CreatedAt })
	return s
}

// seenIn returns the servers of a group the joiner ever saw.
func (s joinerStats) seenIn(group string) []simServer {
	var out []simServer
	for _, v := range s.Seen {
		if v.Tags[groupTag] == group {
			out = append(out, v)
		}
	}
	return out
}
