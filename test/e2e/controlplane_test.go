package e2e

// The shared control plane: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager and kwok, all on 127.0.0.1 with free ports, started
// once for the whole run and stopped (apiserver before etcd) at its end.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
)

// bins are the upstream binaries, by the names scripts/e2e-build.sh --list prints.
type bins map[string]string

// loadBins asks the build script where the cached binaries are. A missing
// control-plane binary is an error; a missing cluster-autoscaler fails only the
// scenarios that run it (the suite never builds inside a test and never skips).
func loadBins(root string) (bins, error) {
	out, err := exec.Command(filepath.Join(root, "scripts/e2e-build.sh"), "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/e2e-build.sh --list: %v", err)
	}
	b := bins{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	var missing []string
	for sc.Scan() {
		name, path, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		b[name] = path
		if _, err := os.Stat(path); err != nil && !strings.HasPrefix(name, "cluster-autoscaler-") {
			missing = append(missing, path)
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("not built yet (run scripts/e2e-build.sh): %s", strings.Join(missing, ", "))
	}
	return b, nil
}

type controlPlane struct {
	dir        string
	certs      *harness.Certs
	token      string
	kubeconfig string
	apiURL     string
	kube       *kube
	procs      []*proc // in start order
	started    time.Duration
}

const adminToken = "e2e-admin-token-0c1d2e3f"

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// serviceAccountKeys writes an ECDSA key pair for the apiserver's token signing (CA's ServiceAccount tokens).
func serviceAccountKeys(dir string) (pub, priv string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	priv, pub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writeFile(priv, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))); err != nil {
		return "", "", err
	}
	return pub, priv, writeFile(pub, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))
}

func kubeconfigYAML(server, caFile, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context:
    cluster: e2e
    user: admin
current-context: e2e
`, server, caFile, token)
}

var insecureHTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// httpOK reports whether GET url answers 200 (self-signed serving certificates of
// the scheduler and controller-manager are not verified: loopback only).
func httpOK(url string) (bool, error) {
	resp, err := insecureHTTP.Get(url)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return false, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return true, nil
}

// startControlPlane starts everything; on error the caller stops what was started (cp.stop).
func startControlPlane(t testing.TB, b bins, dir string) (cp *controlPlane, err error) {
	t0 := time.Now()
	cp = &controlPlane{dir: dir, token: adminToken}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cp, err
	}
	cp.certs = harness.GenerateCerts(t, dir)
	add := func(p *proc, err error) (*proc, error) {
		if p != nil {
			cp.procs = append(cp.procs, p)
		}
		return p, err
	}

	// etcd
	etcdPort, peerPort := harness.FreePort(t), harness.FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd, err := add(startProc(dir, "etcd", b["etcd"], []string{
		"--name=e2e", "--data-dir=" + filepath.Join(dir, "etcd-data"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=e2e=" + peerURL, "--listen-metrics-urls=",
		"--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
	}, nil))
	if err != nil {
		return cp, err
	}
	if err := waitFor("etcd healthy", etcd, 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200, nil
	}); err != nil {
		return cp, err
	}

	// kube-apiserver
	pub, priv, err := serviceAccountKeys(dir)
	if err != nil {
		return cp, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := writeFile(tokens, adminToken+",e2e-admin,e2e-admin,system:masters\n"); err != nil {
		return cp, err
	}
	apiPort := harness.FreePort(t)
	cp.apiURL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	api, err := add(startProc(dir, "kube-apiserver", b["kube-apiserver"], []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + cp.certs.ServerCert, "--tls-private-key-file=" + cp.certs.ServerKey,
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		// RBAC, so that CA runs with only what deploy/ grants it (rbac_test.go); the
		// other components and the suite itself use the system:masters token.
		"--token-auth-file=" + tokens, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pub, "--service-account-signing-key-file=" + priv,
		"--service-cluster-ip-range=10.96.0.0/16",
		// No ServiceAccount controllers run, so pods must not need a ServiceAccount.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none", "--profiling=false",
	}, nil))
	if err != nil {
		return cp, err
	}
	if cp.kube, err = newKube(cp.apiURL, adminToken, cp.certs.CA); err != nil {
		return cp, err
	}
	if err := waitFor("kube-apiserver ready", api, 3*time.Minute, 500*time.Millisecond, func() (bool, error) {
		err := cp.kube.do("GET", "/readyz", "", nil, nil)
		return err == nil, err
	}); err != nil {
		return cp, err
	}
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeFile(cp.kubeconfig, kubeconfigYAML(cp.apiURL, cp.certs.CA, adminToken)); err != nil {
		return cp, err
	}
	// CA's ServiceAccount and RBAC from deploy/, before any CA starts.
	if err := cp.applyCARBAC(); err != nil {
		return cp, fmt.Errorf("CA's RBAC from deploy/: %v", err)
	}
	kc := "--kubeconfig=" + cp.kubeconfig
	delegated := []string{kc, "--authentication-kubeconfig=" + cp.kubeconfig, "--authorization-kubeconfig=" + cp.kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1"}

	// kube-scheduler and kube-controller-manager (the controllers a Deployment and
	// node readiness need: the node-lifecycle controller lifts the not-ready taint).
	schedPort, kcmPort := harness.FreePort(t), harness.FreePort(t)
	sched, err := add(startProc(dir, "kube-scheduler", b["kube-scheduler"], append(append([]string{}, delegated...), fmt.Sprintf("--secure-port=%d", schedPort)), nil))
	if err != nil {
		return cp, err
	}
	kcmArgs := append(append([]string{}, delegated...),
		fmt.Sprintf("--secure-port=%d", kcmPort), "--cert-dir="+filepath.Join(dir, "kcm-certs"),
		"--controllers=deployment-controller,replicaset-controller,node-lifecycle-controller,garbage-collector-controller,pod-garbage-collector-controller",
	)
	kcm, err := add(startProc(dir, "kube-controller-manager", b["kube-controller-manager"], append(kcmArgs, suite.cpFlags["kube-controller-manager"]...), nil))
	if err != nil {
		return cp, err
	}

	// kwok: fakes the kubelets of the Nodes the joiner registers (those carry the annotation).
	kwokPort := harness.FreePort(t)
	kwok, err := add(startProc(dir, "kwok", b["kwok"], append([]string{
		kc, "--config=" + b["kwok-stages"],
		"--manage-nodes-with-annotation-selector=" + kwokAnnotation + "=fake",
		"--cidr=10.200.0.0/16", "--node-ip=10.99.0.1",
		fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort),
	}, suite.cpFlags["kwok"]...), nil))
	if err != nil {
		return cp, err
	}
	if err := waitFor("kube-scheduler healthy", sched, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		return httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort))
	}); err != nil {
		return cp, err
	}
	if err := waitFor("kube-controller-manager healthy", kcm, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		return httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort))
	}); err != nil {
		return cp, err
	}
	if err := waitFor("kwok healthy", kwok, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", kwokPort))
	}); err != nil {
		return cp, err
	}
	cp.started = time.Since(t0)
	return cp, nil
}

// stop ends every process, newest first (so the apiserver goes before etcd), and
// SIGKILLs whatever is left.
func (cp *controlPlane) stop() {
	if cp == nil {
		return
	}
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].Stop(5 * time.Second)
	}
	for _, p := range cp.procs {
		p.Kill9()
	}
}

// exited names the control-plane processes that have exited.
func (cp *controlPlane) exited() []string {
	var out []string
	for _, p := range cp.procs {
		if p.Exited() {
			out = append(out, fmt.Sprintf("%s (%v)", p.name, p.err))
		}
	}
	return out
}
