package bench

// The CA-at-scale figures: the real cluster-autoscaler 1.36.1 against 1,000 and
// 5,000 Nodes (test/e2e/cascale_test.go writes them as JSON; scripts/bench.sh
// runs it before the per-call benchmark and hands the file over with
// -ca-scale). They join the table, the targets and the `bench:` line.

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

var flagCAScale = flag.String("ca-scale", "", "the CA-at-scale results (JSON from test/e2e/cascale_test.go) to add to the report")

// Targets: CA's main loop p50 with ours at most this many times CA's with the Go baseline.
var caScaleTargets = map[int]float64{1000: 1.05, 5000: 1.15}

type caScaleFile struct {
	StartedAt string        `json:"startedAt"`
	Seconds   float64       `json:"durationSeconds"`
	CA        string        `json:"ca"`
	Binary    string        `json:"binary"`
	Sizes     []caScaleSize `json:"sizes"`
}

type caScaleSize struct {
	Nodes      int                      `json:"nodes"`
	Groups     int                      `json:"groups"`
	Registered float64                  `json:"registerSeconds"`
	Sides      map[string]caScaleResult `json:"sides"`
	P50X       float64                  `json:"p50Ratio"`
	P90X       float64                  `json:"p90Ratio"`
	LoadStart  string                   `json:"loadavgStart"`
	LoadEnd    string                   `json:"loadavgEnd"`
}

type caScaleResult struct {
	Loops        int                `json:"loops"`
	P50          float64            `json:"p50Seconds"`
	P90          float64            `json:"p90Seconds"`
	CallsPerLoop map[string]float64 `json:"callsPerLoop"`
	CPUPerLoopMs float64            `json:"serverCpuMsPerLoop"`
	CPUPct       float64            `json:"serverCpuPercent"`
	CACPUPerLoop float64            `json:"caCpuMsPerLoop"`
	RSSMaxMiB    float64            `json:"serverRssMaxMiB"`
	RSSMedMiB    float64            `json:"serverRssMedianMiB"`
	AnonMedMiB   float64            `json:"serverAnonMedianMiB"`
}

func readCAScale(path string) (*caScaleFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f caScaleFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(f.Sizes) == 0 {
		return nil, fmt.Errorf("%s: no size was measured (the run failed; see its output)", path)
	}
	return &f, nil
}

// caScaleMarkdown renders the figures as the report's section.
func caScaleMarkdown(f *caScaleFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nCA at scale (`bun run bench:ca-scale`, test/e2e/cascale_test.go): the real cluster-autoscaler %s at its default 10 s scan interval, kwok Nodes in 50 groups at their min size (steady state), CA restarted for each block of loops, blocks alternating ours / Go; %s; run took %.0f s.\n\n", f.CA, f.Binary, f.Seconds)
	fmt.Fprintf(&b, "| nodes | loops (ours / Go) | CA main loop p50 ours / Go | p90 ours / Go | p50 ratio | p90 ratio | server CPU per loop ours / Go | CPU %% of a core ours / Go | RSS median ours / Go (anon ours) | CA CPU per loop ours / Go | load average start → end |\n")
	fmt.Fprintf(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range f.Sizes {
		o, g := s.Sides["ours"], s.Sides["go"]
		fmt.Fprintf(&b, "| %d | %d / %d | %.3f / %.3f s | %.3f / %.3f s | %.2f× | %.2f× | %.0f / %.0f ms | %.1f / %.1f %% | %.1f / %.1f MiB (%.1f) | %.0f / %.0f ms | %s → %s |\n",
			s.Nodes, o.Loops, g.Loops, o.P50, g.P50, o.P90, g.P90, s.P50X, s.P90X, o.CPUPerLoopMs, g.CPUPerLoopMs, o.CPUPct, g.CPUPct,
			o.RSSMedMiB, g.RSSMedMiB, o.AnonMedMiB, o.CACPUPerLoop, g.CACPUPerLoop, s.LoadStart, s.LoadEnd)
	}
	fmt.Fprintf(&b, "\n| nodes | calls per CA loop, ours | calls per CA loop, Go |\n|---:|---|---|\n")
	for _, s := range f.Sizes {
		fmt.Fprintf(&b, "| %d | %s | %s |\n", s.Nodes, callsLine(s.Sides["ours"].CallsPerLoop), callsLine(s.Sides["go"].CallsPerLoop))
	}
	return b.String()
}

func callsLine(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	total := 0.0
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Slice(keys, func(a, b int) bool { return m[keys[a]] > m[keys[b]] || m[keys[a]] == m[keys[b]] && keys[a] < keys[b] })
	parts := []string{fmt.Sprintf("%.0f in all", total)}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %g", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// addCAScale adds the CA-at-scale targets and figures to the results (nil: none measured).
func (r *results) addCAScale(f *caScaleFile, readErr error) {
	if readErr != nil {
		r.Targets = append(r.Targets, target{"CA at scale", "measured", readErr.Error(), false})
		r.fig("ca_scale", "failed")
		return
	}
	for _, s := range f.Sizes {
		o, g := s.Sides["ours"], s.Sides["go"]
		if want, ok := caScaleTargets[s.Nodes]; ok { // other sizes are reported, without a target
			r.Targets = append(r.Targets, target{fmt.Sprintf("CA main loop at %d nodes (real CA)", s.Nodes), fmt.Sprintf("p50 <= %.2fx Go baseline", want),
				fmt.Sprintf("x%.2f (%.3f / %.3f s)", s.P50X, o.P50, g.P50), s.P50X > 0 && s.P50X <= want})
		}
		key := fmt.Sprintf("ca_scale_%d", s.Nodes)
		r.fig(key+"_x", s.P50X)
		r.fig(key+"_p90_x", s.P90X)
		r.fig(key+"_ms", round(o.P50*1000, 0))
		r.fig(key+"_go_ms", round(g.P50*1000, 0))
		r.fig(key+"_cpu_ms", o.CPUPerLoopMs)
		r.fig(key+"_rss_mib", o.RSSMedMiB)
	}
	r.CAScale = f
}

// TestCAScaleReport prints a CA-at-scale results file as the benchmark reports
// it (scripts/bench.sh --ca-scale, which runs only that part).
func TestCAScaleReport(t *testing.T) {
	if *flagCAScale == "" {
		t.Skip("no -ca-scale file")
	}
	f, err := readCAScale(*flagCAScale)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Print(caScaleMarkdown(f))
	r := &results{figureMap: map[string]string{}}
	r.addCAScale(f, nil)
	met := 0
	for _, tg := range r.Targets {
		v := "missed"
		if tg.Met {
			met++
			v = "met"
		}
		fmt.Printf("target: %s: %s; measured %s: %s\n", tg.Name, tg.Target, tg.Value, v)
	}
	r.fig("targets_met", fmt.Sprintf("%d/%d", met, len(r.Targets)))
	var line strings.Builder
	line.WriteString("bench:")
	for _, fg := range r.Figures {
		fmt.Fprintf(&line, " %s=%s", fg["key"], r.figureMap[fg["key"].(string)])
	}
	summaryLine = line.String()
}
