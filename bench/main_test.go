package bench

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

var (
	flagSmoke     = flag.Bool("smoke", false, "small run for CI: 500 servers, a few hundred calls per figure (numbers not asserted)")
	flagOut       = flag.String("out", "", "where to write the results JSON (default: bench/results.json; with -smoke .cache/bench/results-smoke.json)")
	flagCPUProf   = flag.String("cpu-prof", "", "run the provider under test from source with Bun's --cpu-prof, writing the profile (and a .md summary) into this directory")
	flagBun       = flag.String("bun", "bun", "the bun executable for -cpu-prof")
	flagServers   = flag.Int("servers", 0, "override the number of our servers (default 5000, smoke 500)")
	flagRounds    = flag.Int("rounds", 0, "override the number of interleaved provider/baseline rounds per lookup figure")
	flagWindow    = flag.Int("client-window", 0, "experiment: HTTP/2 flow-control window (bytes) the client announces; 0 = grpc-go's default, as CA dials")
	flagServeLog  = flag.String("serve-log", "", "write everything the provider under test printed to this file at the end")
	flagStartOnly = flag.Bool("start-only", false, "time only the starts (spawn -> first served call), the provider, the Go baseline and -before taking turns")
	flagBefore    = flag.String("before", "", "A/B: serve this binary too (the step before) against the same simulator, timed in the same interleaved rounds as the provider and Go (lookups and the CA loop)")
)

// summaryLine is printed after the test framework's own PASS/FAIL, so that
// it is the last line of the output.
var summaryLine string

func TestMain(m *testing.M) {
	if os.Getenv("BENCH_ROLE") == "baseline" {
		os.Exit(runBaseline())
	}
	code := m.Run()
	if summaryLine != "" {
		fmt.Println(summaryLine)
	}
	os.Exit(code)
}
