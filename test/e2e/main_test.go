package e2e

// The run: one shared control plane for all scenarios (started by the first
// scenario, stopped here after the last), and a closing report of each
// scenario's wall time and loop measurements.

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
)

var suite struct {
	once   sync.Once
	root   string
	runDir string
	bins   bins
	cp     *controlPlane
	cpErr  error
	// cpFlags are extra flags per control-plane component ("kwok", "kube-controller-manager"),
	// set by a test before the control plane starts.
	cpFlags map[string][]string

	mu      sync.Mutex
	reports []*report
}

// report collects one scenario's figures for the closing table.
type report struct {
	name   string
	wall   time.Duration
	failed bool
	lines  []string
}

func (r *report) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	root, err := harness.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	suite.root = root
	suite.runDir = os.Getenv("E2E_RUN_DIR")
	if suite.runDir == "" {
		suite.runDir = filepath.Join(suite.root, ".cache", "e2e-run", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(suite.runDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	// An interrupted run still stops its processes (kill -9 of this binary is covered by Pdeathsig).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		suite.cp.stop()
		os.Exit(2)
	}()
	code := m.Run()
	t0 := time.Now()
	suite.cp.stop()
	if suite.cp != nil {
		fmt.Printf("e2e: control plane stopped in %s\n", time.Since(t0).Round(time.Millisecond))
	}
	printReports()
	os.Exit(code)
}

// controlPlaneFor returns the shared control plane, starting it on first use.
// If it cannot start, every scenario fails (never skips).
func controlPlaneFor(t *testing.T) *controlPlane {
	t.Helper()
	suite.once.Do(func() {
		suite.bins, suite.cpErr = loadBins(suite.root)
		if suite.cpErr != nil {
			return
		}
		dir := filepath.Join(suite.runDir, "control-plane")
		suite.cp, suite.cpErr = startControlPlane(t, suite.bins, dir)
		if suite.cpErr != nil {
			suite.cp.stop()
			return
		}
		fmt.Printf("e2e: control plane up in %s (logs in %s)\n", suite.cp.started.Round(time.Millisecond), dir)
	})
	if suite.cpErr != nil {
		t.Fatalf("control plane: %v", suite.cpErr)
	}
	if suite.cp == nil || suite.cp.kube == nil {
		t.Fatal("control plane: not started (see the first scenario's error)")
	}
	if gone := suite.cp.exited(); len(gone) > 0 {
		t.Fatalf("control plane: processes exited: %s", strings.Join(gone, ", "))
	}
	return suite.cp
}

func printReports() {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	if len(suite.reports) == 0 {
		return
	}
	fmt.Println("\ne2e: ---- measurements (this machine; see scripts/test-e2e.sh for build times) ----")
	var total time.Duration
	for _, r := range suite.reports {
		res := "ok"
		if r.failed {
			res = "FAILED"
		}
		total += r.wall
		fmt.Printf("e2e: %-34s %-6s wall %6.1fs\n", r.name, res, r.wall.Seconds())
		for _, l := range r.lines {
			fmt.Printf("e2e:     %s\n", l)
		}
	}
	if suite.cp != nil {
		fmt.Printf("e2e: control plane start %.1fs; scenarios %.1fs in total; logs in %s\n", suite.cp.started.Seconds(), total.Seconds(), suite.runDir)
	}
}
