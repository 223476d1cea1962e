package e2e

// What an operator installs, applied to the real kube-apiserver: every rendering
// of deploy/ (kustomize, with and without its components), of the chart in
// charts/ (several value sets) and of Cluster Autoscaler's own chart with
// deploy/helm/cluster-autoscaler-values.yaml, server-side with strict field
// validation (dry-run), against the CRDs of cert-manager and the Prometheus
// Operator installed from those projects' own YAML. Then the in-cluster
// walk-throughs of docs/operating.md are run as written, on a fake control-plane
// node and a fake worker (kwok plays their kubelets): the pods must land on the
// control-plane node, and the operator's own token Secret must survive every
// apply.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	controlPlaneLabel = "node-role.kubernetes.io/control-plane"
	// The operator's own token, created by hand before any apply.
	operatorToken = "operator-token-4c1b7e"
)

// caChartDir is CA's own Helm chart (charts/cluster-autoscaler in CA's source tree, chart
// 9.58.0 at the CA 1.36.1 release). No package registry this suite may use serves it, so it is
// read from E2E_CA_CHART, from the CA 1.36.1 source tree scripts/ca-source.sh found (a release
// tarball holds it; the cut-down tree in ../shared/third_party does not), or from
// ../shared/third_party/cluster-autoscaler-chart-9.58.0; "" when it is in none of them.
func caChartDir() string {
	for _, d := range []string{
		os.Getenv("E2E_CA_CHART"),
		filepath.Join(suite.root, ".cache", "ca-src", "cluster-autoscaler-1.36.1", "charts", "cluster-autoscaler"),
		filepath.Join(suite.root, "..", "shared", "third_party", "cluster-autoscaler-chart-9.58.0"),
	} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "Chart.yaml")); err == nil {
			return d
		}
	}
	return ""
}

const caChartMissing = "CA's chart is not reachable here (set E2E_CA_CHART to its directory)"

// helm runs the cached helm with the admin kubeconfig, its caches in dir.
func (cp *controlPlane) helm(dir string, args ...string) (string, error) {
	cmd := exec.Command(suite.bins["helm"], args...)
	cmd.Dir = suite.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(dir, "helm-cache"), "HELM_CONFIG_HOME="+filepath.Join(dir, "helm-config"), "HELM_DATA_HOME="+filepath.Join(dir, "helm-data"))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// rendering is one set of objects an operator could apply.
type rendering struct {
	name string
	yaml string
}

// deployWithComponents is `kubectl kustomize` of a copy of deploy/ with the
// commented `components:` entries enabled, as kustomization.yaml tells the operator.
func deployWithComponents(cp *controlPlane, dir string, names ...string) (string, error) {
	copyDir := filepath.Join(dir, "deploy-with-"+strings.Join(names, "-"))
	if out, err := exec.Command("cp", "-r", filepath.Join(suite.root, "deploy"), copyDir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cp: %v %s", err, out)
	}
	file := filepath.Join(copyDir, "kustomization.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	text := string(data)
	if !regexp.MustCompile(`(?m)^# components:$`).MatchString(text) {
		return "", fmt.Errorf("deploy/kustomization.yaml has no commented `# components:` line")
	}
	text = regexp.MustCompile(`(?m)^# components:$`).ReplaceAllString(text, "components:")
	for _, n := range names {
		line := regexp.MustCompile(`(?m)^#(\s+- ` + regexp.QuoteMeta(n) + `)$`)
		if !line.MatchString(text) {
			return "", fmt.Errorf("deploy/kustomization.yaml does not offer component %s", n)
		}
		text = line.ReplaceAllString(text, "$1")
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return "", err
	}
	return cp.kubectl("", "kustomize", copyDir)
}

// talosWay renders CA for the provider on the control-plane hosts (ways 1 and 3 of
// docs/operating.md): the operator's own kustomization beside a copy of deploy/,
// with deploy/ as its resource and deploy/talos as its component.
func talosWay(cp *controlPlane, dir string) (string, error) {
	root := filepath.Join(dir, "talos-way")
	if err := os.MkdirAll(filepath.Join(root, "cluster"), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(suite.root, "deploy"), filepath.Join(root, "deploy")).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cp: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(root, "cluster", "kustomization.yaml"), []byte("resources: [../deploy]\ncomponents: [../deploy/talos]\n"), 0o644); err != nil {
		return "", err
	}
	return cp.kubectl("", "kustomize", filepath.Join(root, "cluster"))
}

// renderings are every way deploy/ and the charts render.
func renderings(t *testing.T, cp *controlPlane, dir string) []rendering {
	t.Helper()
	var out []rendering
	add := func(name string, text string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("render %s: %v", name, err)
		}
		out = append(out, rendering{name, text})
	}
	text, err := cp.kubectl("", "kustomize", filepath.Join(suite.root, "deploy"))
	add("kustomize deploy/", text, err)
	for _, c := range [][]string{{"monitoring"}, {"helm"}, {"monitoring", "helm"}} {
		text, err := deployWithComponents(cp, dir, c...)
		add("kustomize deploy/ with "+strings.Join(c, "+"), text, err)
	}
	text, err = talosWay(cp, dir)
	add("kustomize deploy/ with the component deploy/talos (ways 1 and 3)", text, err)
	chart := filepath.Join(suite.root, "charts", "autoscaler-cloudscale")
	for name, args := range map[string][]string{
		"chart: defaults, the operator's token Secret, user-data files": {"--set", "token.existingSecret=autoscaler-cloudscale-token", "--set-file", `userData.files.workers\.yaml=` + filepath.Join(suite.root, "deploy", "talos-worker.example.yaml")},
		"chart: token from values, existing TLS Secrets, ServiceMonitor, PrometheusRule": {"--set", "token.value=t0k3n", "--set", "tls.mode=existingSecrets", "--set", "tls.serverSecret=my-server-tls",
			"--set", "userData.existingSecret=my-userdata", "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.podAnnotations=false"},
		"chart: cert-manager with the operator's ClusterIssuer, another release name": {"--set", "token.existingSecret=tok", "--set", "tls.certManager.issuerRef.kind=ClusterIssuer", "--set", "tls.certManager.issuerRef.name=my-ca",
			"--set", "tls.certManager.issuerRef.group=cert-manager.io", "--set", "fullnameOverride=cloudscale-provider", "--set", "clusterAutoscaler.cloudConfig.create=false"},
	} {
		text, err := cp.helm(dir, append([]string{"template", "autoscaler-cloudscale", chart, "--namespace", caNamespace}, args...)...)
		add(name, text, err)
	}
	if ca := caChartDir(); ca != "" {
		text, err := cp.helm(dir, "template", "cluster-autoscaler", ca, "--namespace", caNamespace, "-f", filepath.Join(suite.root, "deploy", "helm", "cluster-autoscaler-values.yaml"))
		add("CA's chart with deploy/helm/cluster-autoscaler-values.yaml", text, err)
	} else {
		t.Logf("NOT RUN: CA's own chart with deploy/helm/cluster-autoscaler-values.yaml: %s", caChartMissing)
	}
	return out
}

// installCRDs applies the cert-manager and Prometheus Operator CRDs (scripts/e2e-build.sh) and waits until they serve.
func installCRDs(cp *controlPlane) error {
	if _, err := cp.kubectl("", "apply", "--server-side", "--field-manager=e2e", "-f", suite.bins["crds"]); err != nil {
		return err
	}
	_, err := cp.kubectl("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io", "crd/clusterissuers.cert-manager.io",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	return err
}

// dryRunStrict applies objects server-side, dry-run, with strict field validation.
func dryRunStrict(cp *controlPlane, yamlText string) error {
	_, err := cp.kubectl(yamlText, "apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=e2e", "--force-conflicts", "-f", "-")
	return err
}

// fakeNode registers a Node that kwok plays: a control-plane node (labelled and
// tainted as kubeadm and Talos make them) or a plain worker.
func fakeNode(k *kube, name string, controlPlane bool) error {
	labels := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
	var taints []taint
	if controlPlane {
		labels[controlPlaneLabel] = ""
		taints = []taint{{Key: controlPlaneLabel, Effect: "NoSchedule"}}
	}
	n := map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": labels, "annotations": map[string]string{kwokAnnotation: "fake"}},
		"spec":     map[string]any{"taints": taints},
		"status": map[string]any{
			"capacity":    map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"},
			"allocatable": map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"},
		},
	}
	return k.create("/api/v1/nodes", n)
}

type secretState struct {
	ResourceVersion string
	Data            map[string]string
}

func tokenSecret(k *kube) (secretState, error) {
	var s struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	err := k.get("/api/v1/namespaces/"+caNamespace+"/secrets/autoscaler-cloudscale-token", &s)
	return secretState{s.Metadata.ResourceVersion, s.Data}, err
}

func TestManifests(t *testing.T) {
	rep := &report{name: "manifests on the real apiserver"}
	t0 := time.Now()
	suite.mu.Lock()
	suite.reports = append(suite.reports, rep)
	suite.mu.Unlock()
	cp := controlPlaneFor(t)
	t.Cleanup(func() { rep.wall, rep.failed = time.Since(t0), t.Failed() })
	dir := filepath.Join(suite.runDir, "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := installCRDs(cp); err != nil {
		t.Fatalf("CRDs: %v", err)
	}

	t.Run("strict schema check of every rendering", func(t *testing.T) {
		// First prove that the check can fail: a misspelt field in a Deployment and in a Certificate.
		for _, bad := range []string{
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: kube-system}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i, imagePullPolicey: Always}]\n",
			"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: bad, namespace: kube-system}\nspec: {secretName: s, dnsName: [a], issuerRef: {name: i}}\n",
		} {
			err := dryRunStrict(cp, bad)
			if err == nil || !strings.Contains(err.Error(), "field not declared in schema") {
				t.Errorf("a misspelt field was not refused (err %v):\n%s", err, bad)
			}
		}
		for _, r := range renderings(t, cp, dir) {
			docs, err := renderedDocs(r.yaml)
			if err != nil {
				t.Errorf("%s: %v", r.name, err)
				continue
			}
			if err := dryRunStrict(cp, r.yaml); err != nil {
				t.Errorf("%s: the apiserver refuses it: %v", r.name, err)
				continue
			}
			kinds := map[string]int{}
			for _, d := range docs {
				k, _ := kindName(d)
				kinds[k]++
			}
			rep.add("%s: %d objects accepted (server-side, dry-run, strict) %v", r.name, len(docs), kinds)
		}
	})

	t.Run("walk-throughs of docs/operating.md", func(t *testing.T) {
		for _, n := range []struct {
			name string
			cp   bool
		}{{"e2e-control-plane-1", true}, {"e2e-plain-worker-1", false}} {
			if err := fakeNode(cp.kube, n.name, n.cp); err != nil && !isConflict(err) {
				t.Fatalf("node %s: %v", n.name, err)
			}
			name := n.name
			t.Cleanup(func() {
				if err := cp.kube.delete("/api/v1/nodes/" + name); err != nil && !isNotFound(err) {
					t.Errorf("cleanup: node %s: %v", name, err)
				}
			})
		}
		for _, w := range walkThroughs(t) {
			t.Run(w.name, func(t *testing.T) { runWalkThrough(t, cp, dir, w, rep) })
		}
	})
}

// checkScheduled waits until the pods of Deployment kube-system/name run, and asserts they run on the control-plane node.
func checkScheduled(t *testing.T, cp *controlPlane, name string) {
	t.Helper()
	what := "Deployment " + name
	var dep struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
		} `json:"spec"`
	}
	if err := cp.kube.get("/apis/apps/v1/namespaces/"+caNamespace+"/deployments/"+name, &dep); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var sel []string
	for k, v := range dep.Spec.Selector.MatchLabels {
		sel = append(sel, k+"="+v)
	}
	selector := strings.Join(sel, ",")
	var pods map[string]string
	err := waitFor(what+" pods Running", nil, 2*time.Minute, time.Second, func() (bool, error) {
		ps, err := cp.kube.pods(caNamespace, selector)
		if err != nil {
			return false, err
		}
		pods = map[string]string{}
		running := 0
		for _, p := range ps {
			pods[p.Metadata.Name] = p.Spec.NodeName + "/" + p.Status.Phase
			if p.Status.Phase == "Running" {
				running++
			}
		}
		return running > 0 && running == len(ps), fmt.Errorf("pods %v", pods)
	})
	if err != nil {
		evs, _ := cp.kube.events(caNamespace)
		var lines []string
		for _, e := range evs {
			if e.InvolvedObject.Kind == "Pod" {
				lines = append(lines, e.Reason+": "+e.Message)
			}
		}
		t.Fatalf("%s: %v\nevents: %s", what, err, strings.Join(lines, "\n"))
	}
	for name, where := range pods {
		if !strings.HasPrefix(where, "e2e-control-plane-") {
			t.Errorf("%s: pod %s runs on %s, not on the control-plane node", what, name, where)
		}
	}
}

// secretUnchanged asserts the operator's token Secret is still the one made by hand.
func secretUnchanged(t *testing.T, k *kube, before secretState, after string) {
	t.Helper()
	now, err := tokenSecret(k)
	if err != nil {
		t.Fatalf("token Secret %s: %v", after, err)
	}
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(now)
	if string(a) != string(b) {
		t.Errorf("the operator's token Secret changed %s: %s -> %s", after, b, a)
	}
}
