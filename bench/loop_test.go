package bench

// The CA loop: what one Cluster Autoscaler scan asks, in CA's order and one call
// after another, as CA makes them: Refresh, NodeGroups, NodeGroupForNode and twice
// NodeGroupGetOptions for every node (what the real CA 1.36 asks per node and loop: bench/ca-scale.json),
// then NodeGroupTargetSize and NodeGroupNodes for every group. Its wall time is what CA waits on us
// per scan; the figure is its ratio to the Go baseline's in the same run.

import (
	"context"
	"fmt"
	"sort"
	"time"

	wire "k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc/protos"
)

type loopRun struct {
	wall, refresh time.Duration
	cpu           float64
	calls, wrong  int
	errors        int
	firstErr      error
	truncated     bool
}

// loopOnce makes one CA loop against c; nodes are the cluster's nodes as CA sends them.
func (e *env) loopOnce(c wire.CloudProviderClient, pid int, nodes []*wire.NodeGroupForNodeRequest, want []string) loopRun {
	var r loopRun
	call := func(f func(ctx context.Context) error) {
		ctx, cancel := e.ctx()
		err := f(ctx)
		cancel()
		r.calls++
		if err != nil {
			r.errors++
			if r.firstErr == nil {
				r.firstErr = err
			}
		}
	}
	cpu0 := cpuSeconds(pid)
	t0 := time.Now()
	deadline := t0.Add(e.p.BlockLimit)
	call(func(ctx context.Context) error { _, err := c.Refresh(ctx, &wire.RefreshRequest{}); return err })
	r.refresh = time.Since(t0)
	call(func(ctx context.Context) error { _, err := c.NodeGroups(ctx, &wire.NodeGroupsRequest{}); return err })
	for i, n := range nodes {
		if time.Now().After(deadline) {
			r.truncated = true
			break
		}
		call(func(ctx context.Context) error {
			res, err := c.NodeGroupForNode(ctx, n)
			if err == nil && res.GetNodeGroup().GetId() != want[i] {
				r.wrong++
			}
			return err
		})
		for k := 0; k < 2; k++ {
			call(func(ctx context.Context) error { return getOptions(c, ctx, want[i]) })
		}
	}
	for _, g := range e.groups {
		call(func(ctx context.Context) error {
			_, err := c.NodeGroupTargetSize(ctx, &wire.NodeGroupTargetSizeRequest{Id: g.Name})
			return err
		})
		call(func(ctx context.Context) error {
			_, err := c.NodeGroupNodes(ctx, &wire.NodeGroupNodesRequest{Id: g.Name})
			return err
		})
	}
	r.wall = time.Since(t0)
	r.cpu = cpuSeconds(pid) - cpu0
	return r
}

func (e *env) caLoop() {
	p := e.p
	var nodes []*wire.NodeGroupForNodeRequest
	var want []string
	for _, s := range e.ours() {
		labels, annotations := nodeMeta(s)
		nodes = append(nodes, &wire.NodeGroupForNodeRequest{Node: &wire.ExternalGrpcNode{ProviderID: providerIDPrefix + s.UUID, Name: s.Name, Labels: labels, Annotations: annotations}})
		want = append(want, s.Group)
	}
	sides := e.sides()
	runs := make([][]loopRun, len(sides))
	for round := 0; round < p.LoopRounds; round++ {
		for k := range sides {
			i := turn(k, round, len(sides))
			runs[i] = append(runs[i], e.loopOnce(sides[i].c, sides[i].pid, nodes, want))
		}
	}
	prov, base := runs[0], runs[1]
	summarize := func(side string, runs []loopRun) map[string]any {
		var walls, rest, refresh []time.Duration
		cpu := 0.0
		calls, errs, wrong := 0, 0, 0
		truncated := false
		var firstErr error
		for _, r := range runs {
			walls, rest, refresh = append(walls, r.wall), append(rest, r.wall-r.refresh), append(refresh, r.refresh)
			cpu += r.cpu
			calls, errs, wrong = calls+r.calls, errs+r.errors, wrong+r.wrong
			truncated = truncated || r.truncated
			if firstErr == nil {
				firstErr = r.firstErr
			}
		}
		if errs > 0 || wrong > 0 || truncated {
			e.t.Errorf("CA loop (%s): %d errors (first: %v), %d wrong NodeGroupForNode answers, truncated %v", side, errs, firstErr, wrong, truncated)
		}
		msList := func(d []time.Duration) []float64 {
			out := []float64{}
			for _, x := range d {
				out = append(out, round(ms(x), 1))
			}
			return out
		}
		med := func(d []time.Duration) float64 {
			s := append([]time.Duration(nil), d...)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			return round(ms(s[len(s)/2]), 1)
		}
		return map[string]any{
			"wall_ms": msList(walls), "wall_median_ms": med(walls),
			"withoutRefresh_median_ms": med(rest), "refresh_median_ms": med(refresh),
			"callsPerLoop": calls / max(1, len(runs)), "cpuMsPerLoop": round(cpu*1000/float64(max(1, len(runs))), 1),
			"errors": errs, "wrongAnswers": wrong, "truncated": truncated,
		}
	}
	ps, bs := summarize("provider", prov), summarize("baseline", base)
	ratio := round(ps["wall_median_ms"].(float64)/bs["wall_median_ms"].(float64), 2)
	restRatio := round(ps["withoutRefresh_median_ms"].(float64)/bs["withoutRefresh_median_ms"].(float64), 2)
	e.res.Loop = map[string]any{
		"nodes": len(nodes), "groups": len(e.groups), "rounds": p.LoopRounds,
		"provider": ps, "baseline": bs, "ratio": ratio, "withoutRefreshRatio": restRatio,
		"what": fmt.Sprintf("Refresh, NodeGroups, NodeGroupForNode + 2 NodeGroupGetOptions x%d, NodeGroupTargetSize + NodeGroupNodes x%d, sequential", len(nodes), len(e.groups)),
	}
	if e.before != nil {
		bf := summarize("before", runs[2])
		e.res.Loop["before"] = bf
		e.res.Loop["beforeRatio"] = round(bf["wall_median_ms"].(float64)/bs["wall_median_ms"].(float64), 2)
		logf("bench: CA loop, -before binary: median %.1f ms %v (Refresh %.1f ms): x%.2f; CPU per loop %.1f ms", bf["wall_median_ms"], bf["wall_ms"], bf["refresh_median_ms"], e.res.Loop["beforeRatio"], bf["cpuMsPerLoop"])
	}
	logf("bench: CA loop (%d calls, sequential): provider median %.1f ms %v (Refresh %.1f ms), Go %.1f ms %v (Refresh %.1f ms): x%.2f (x%.2f without Refresh); CPU per loop %.1f / %.1f ms",
		ps["callsPerLoop"], ps["wall_median_ms"], ps["wall_ms"], ps["refresh_median_ms"], bs["wall_median_ms"], bs["wall_ms"], bs["refresh_median_ms"], ratio, restRatio, ps["cpuMsPerLoop"], bs["cpuMsPerLoop"])
}
