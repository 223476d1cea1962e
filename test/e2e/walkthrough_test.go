package e2e

// The in-cluster walk-throughs of docs/operating.md, run as written. Each fenced
// block of their sections carries a marker in the HTML comment before it:
//   <!-- run -->               the suite runs the block with bash, in order
//   <!-- file: NAME -->        the suite writes the block to NAME (a file the operator writes)
//   <!-- not run here: WHY --> it cannot run on this machine (no registry, no kubelet, ...)
// A block without a marker fails the test, so no command is left out unnoticed.
// The blocks run in a fresh copy of deploy/ and charts/, with kubectl and helm
// from scripts/e2e-build.sh on PATH, KUBECONFIG of the suite's apiserver,
// CLOUDSCALE_API_TOKEN set and worker.yaml (what `talosctl gen config` writes)
// in the working directory.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type docBlock struct {
	marker string // "run", "file: NAME" or "not run here: WHY"
	lang   string
	body   string
	line   int
}

type walkThrough struct {
	name    string // the section's heading
	blocks  []docBlock
	helmWay bool
}

// walkThroughHeadings are the sections of docs/operating.md run here.
var walkThroughHeadings = map[string]bool{
	"### 2a. In the cluster with kustomize": false,
	"### 2b. In the cluster with Helm":      true,
}

var markerRE = regexp.MustCompile(`^<!-- (run|file: \S+|not run here: .+) -->$`)

// walkThroughs parses docs/operating.md into its walk-through sections.
func walkThroughs(t *testing.T) []walkThrough {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(suite.root, "docs", "operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []walkThrough
	var cur *walkThrough
	marker := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") {
			cur = nil
			if helmWay, ok := walkThroughHeadings[strings.TrimSpace(l)]; ok {
				out = append(out, walkThrough{name: strings.TrimLeft(l, "# "), helmWay: helmWay})
				cur = &out[len(out)-1]
			}
			continue
		}
		if cur == nil {
			continue
		}
		if m := markerRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			marker = m[1]
			continue
		}
		if strings.HasPrefix(l, "```") {
			b := docBlock{marker: marker, lang: strings.TrimPrefix(l, "```"), line: i + 1}
			var body []string
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				body = append(body, lines[i])
			}
			b.body = strings.Join(body, "\n") + "\n"
			if b.marker == "" {
				t.Errorf("docs/operating.md:%d: a block in %q has no <!-- run -->, <!-- file: NAME --> or <!-- not run here: WHY --> marker", b.line, cur.name)
			}
			cur.blocks = append(cur.blocks, b)
			marker = ""
		}
	}
	if len(out) != len(walkThroughHeadings) {
		t.Fatalf("docs/operating.md: found %d of the walk-through sections %v", len(out), walkThroughHeadings)
	}
	for _, w := range out {
		runs := 0
		for _, b := range w.blocks {
			if b.marker == "run" {
				runs++
			}
		}
		if runs == 0 {
			t.Errorf("docs/operating.md: %q has no block the suite runs", w.name)
		}
	}
	return out
}

// caChartBlock turns the block that installs CA from its chart repository into one that
// installs the local copy of the same chart: the repository cannot be reached here.
func caChartBlock(body, chart string) (string, bool) {
	if !strings.Contains(body, "autoscaler/cluster-autoscaler") {
		return body, false
	}
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "helm repo ") {
			continue
		}
		l = strings.Replace(l, "autoscaler/cluster-autoscaler", chart, 1)
		l = regexp.MustCompile(`\s--version \S+`).ReplaceAllString(l, "")
		out = append(out, l)
	}
	return strings.Join(out, "\n"), true
}

func runWalkThrough(t *testing.T, cp *controlPlane, dir string, w walkThrough, rep *report) {
	slug := strings.Trim(nonName.ReplaceAllString(strings.ToLower(w.name), "-"), "-")
	work := filepath.Join(dir, slug)
	binDir := filepath.Join(work, ".bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"deploy", "charts"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(suite.root, d), filepath.Join(work, d)).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", d, err, out)
		}
	}
	for _, b := range []string{"kubectl", "helm"} {
		if err := os.Symlink(suite.bins[b], filepath.Join(binDir, b)); err != nil {
			t.Fatal(err)
		}
	}
	worker, err := os.ReadFile(filepath.Join(suite.root, "deploy", "talos-worker.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(work, "worker.yaml"), string(worker)); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KUBECONFIG="+cp.kubeconfig, "PATH="+binDir+":"+os.Getenv("PATH"),
		"CLOUDSCALE_API_TOKEN="+operatorToken, "HELM_CACHE_HOME="+filepath.Join(work, ".helm/cache"),
		"HELM_CONFIG_HOME="+filepath.Join(work, ".helm/config"), "HELM_DATA_HOME="+filepath.Join(work, ".helm/data"))
	bash := func(what, script string) error {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		t.Logf("%s:\n%s%s", what, script, out)
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", what, err, out)
		}
		return nil
	}

	// CA's chart brings its own ServiceAccount and RBAC under the same names as deploy/'s,
	// which the suite applied for its CA runs: out of the way while the chart is installed.
	caChart := caChartDir()
	if w.helmWay && caChart != "" {
		if _, err := cp.kubectl("", "delete", "-n", caNamespace, "serviceaccount/"+caServiceAccount, "role/"+caServiceAccount, "rolebinding/"+caServiceAccount,
			"clusterrole/"+caServiceAccount, "clusterrolebinding/"+caServiceAccount); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		var script string
		if w.helmWay {
			script = "helm uninstall --namespace kube-system --ignore-not-found autoscaler-cloudscale cluster-autoscaler\n"
		} else {
			script = "kubectl delete -k deploy/ --wait=true --ignore-not-found\n"
		}
		script += "kubectl -n kube-system delete secret autoscaler-cloudscale-token --ignore-not-found\n"
		if err := bash("cleanup", script); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// deploy/'s RBAC for CA, which the cleanup above may have removed, for the scenarios after this one.
		if err := cp.applyCARBAC(); err != nil {
			t.Errorf("cleanup: CA's RBAC: %v", err)
		}
	})

	var before *secretState
	var applyBlocks []string
	ran, notRun := 0, 0
	for _, b := range w.blocks {
		switch {
		case strings.HasPrefix(b.marker, "file: "):
			name := strings.TrimPrefix(b.marker, "file: ")
			if err := writeFile(filepath.Join(work, name), b.body); err != nil {
				t.Fatal(err)
			}
		case b.marker == "run":
			body := b.body
			if w.helmWay {
				var isCA bool
				if body, isCA = caChartBlock(body, caChart); isCA && caChart == "" {
					t.Logf("NOT RUN (docs/operating.md:%d): %s", b.line, caChartMissing)
					rep.add("%s: NOT RUN: the block at docs/operating.md:%d: %s", w.name, b.line, caChartMissing)
					notRun++
					continue
				}
			}
			if err := bash(fmt.Sprintf("docs/operating.md:%d", b.line), body); err != nil {
				t.Fatal(err)
			}
			ran++
			if strings.Contains(body, "apply -k") || strings.Contains(body, "helm install") || strings.Contains(body, "helm upgrade") {
				applyBlocks = append(applyBlocks, body)
			}
			if before == nil && strings.Contains(body, "create secret generic autoscaler-cloudscale-token") {
				s, err := tokenSecret(cp.kube)
				if err != nil {
					t.Fatalf("after docs/operating.md:%d: %v", b.line, err)
				}
				before = &s
			}
		default:
			notRun++
		}
	}
	if before == nil {
		t.Fatalf("%s: no block creates the token Secret autoscaler-cloudscale-token", w.name)
	}
	checkScheduled(t, cp, "autoscaler-cloudscale")
	if !w.helmWay || caChart != "" {
		checkScheduled(t, cp, "cluster-autoscaler")
	}
	secretUnchanged(t, cp.kube, *before, "after the walk-through")
	// An operator applies again after every change: the Secret made by hand must survive that too.
	if !w.helmWay {
		for _, b := range applyBlocks {
			if err := bash("applied again", b); err != nil {
				t.Fatal(err)
			}
		}
		secretUnchanged(t, cp.kube, *before, "after applying again")
	}
	rep.add("%s: %d blocks run as written, %d not run here; pods on the control-plane node; the operator's token Secret unchanged", w.name, ran, notRun)
}
