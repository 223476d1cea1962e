// Package harness starts the product binary (simulator and gRPC server) for
// the Cluster Autoscaler client harnesses in test/ca and test/ca-legacy, and
// makes the TLS material they dial with. Standard library only, so that it
// does not move either harness's dependency versions.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the absolute path of the compiled product binary, from
// $AUTOSCALER_CLOUDSCALE_BIN or <repo>/dist/autoscaler-cloudscale. A missing
// binary fails the test; it is never skipped.
func Binary(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("AUTOSCALER_CLOUDSCALE_BIN")
	if p == "" {
		p = "dist/autoscaler-cloudscale"
	}
	if !filepath.IsAbs(p) {
		root, err := repoRoot()
		if err != nil {
			tb.Fatalf("cannot place %q: %v (set AUTOSCALER_CLOUDSCALE_BIN to an absolute path)", p, err)
		}
		p = filepath.Join(root, p)
	}
	st, err := os.Stat(p)
	if err != nil {
		tb.Fatalf("product binary not found at %s (%v): build it first (bun run build) or set AUTOSCALER_CLOUDSCALE_BIN", p, err)
	}
	if st.Mode()&0o111 == 0 {
		tb.Fatalf("product binary %s is not executable", p)
	}
	return p
}

// repoRoot walks up from the working directory to the directory holding
// package.json (the Bun project root).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "package.json")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no package.json above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("no free port on 127.0.0.1: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a child's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 1<<20 {
		b.buf.WriteString(line)
		b.buf.WriteByte('\n')
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is one started child process (in its own process group).
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error
}

// Output returns what the process printed so far (stdout and stderr, by line).
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process: SIGTERM to its group, SIGKILL after 5 s.
func (p *Proc) Stop() {
	if p.cmd.Process == nil || p.Exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// start runs bin with args and waits until ready(line) is true for a line of
// its output, failing the test after timeout or if the process exits first.
func start(tb testing.TB, name, bin string, args, env []string, ready func(string) bool, timeout time.Duration) (*Proc, string) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	// Own process group (Stop signals the group); killed if the test binary
	// dies without running its cleanups (e.g. on a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: cannot start %s: %v", name, bin, err)
	}
	tb.Cleanup(p.Stop)
	readyLine := make(chan string, 1)
	var once sync.Once
	var wg sync.WaitGroup
	scan := func(r io.Reader, stream string) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.out.add(stream + ": " + line)
			if ready(line) {
				once.Do(func() { readyLine <- line })
			}
		}
	}
	wg.Add(2)
	go scan(stdout, "out")
	go scan(stderr, "err")
	go func() {
		wg.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case line := <-readyLine:
		return p, line
	case <-p.done:
		tb.Fatalf("%s exited before it was ready (%v); %s %s printed:\n%s", name, p.err, bin, strings.Join(args, " "), p.Output())
	case <-time.After(timeout):
		tb.Fatalf("%s not ready after %s; it printed:\n%s", name, timeout, p.Output())
	}
	return nil, ""
}

// Sim is a running `autoscaler-cloudscale sim`.
type Sim struct {
	*Proc
	URL string // http://127.0.0.1:PORT
	API string // http://127.0.0.1:PORT/v1
}

var simLine = regexp.MustCompile(`sim: listening on (http://\S+)`)

// StartSim starts the simulator on a free loopback port.
func StartSim(tb testing.TB, bin string, extraArgs ...string) *Sim {
	tb.Helper()
	args := append([]string{"sim", "--listen", fmt.Sprintf("127.0.0.1:%d", FreePort(tb))}, extraArgs...)
	p, line := start(tb, "sim", bin, args, nil, func(l string) bool { return simLine.MatchString(l) }, 20*time.Second)
	u := strings.TrimRight(simLine.FindStringSubmatch(line)[1], "/")
	return &Sim{Proc: p, URL: u, API: u + "/v1"}
}

// Control sends one request to the simulator's /_sim/ control API and returns
// the body; a status >= 300 fails the test.
func (s *Sim) Control(tb testing.TB, method, path string, body any) []byte {
	tb.Helper()
	out, code, err := s.Do(method, path, body)
	if err != nil {
		tb.Fatalf("sim control %s %s: %v", method, path, err)
	}
	if code >= 300 {
		tb.Fatalf("sim control %s %s: HTTP %d: %s", method, path, code, out)
	}
	return out
}

// Do sends one request to the simulator and returns body and status.
func (s *Sim) Do(method, path string, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return out, resp.StatusCode, err
}

// Server is a running `autoscaler-cloudscale serve`.
type Server struct {
	*Proc
	Addr string // 127.0.0.1:PORT
}

// Token is the API token the harness gives the server (the simulator
// accepts any non-empty token unless started with --token).
const Token = "conformance-token"

// StartServe starts the gRPC server against the simulator: with mTLS when
// certs is non-nil, otherwise with --insecure-plaintext (h2c).
func StartServe(tb testing.TB, bin, configPath string, sim *Sim, certs *Certs) *Server {
	tb.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	args := []string{"serve", "--config", configPath, "--listen", addr}
	if certs != nil {
		args = append(args, "--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--tls-client-ca", certs.CA)
	} else {
		args = append(args, "--insecure-plaintext")
	}
	env := []string{"CLOUDSCALE_API_TOKEN=" + Token, "CLOUDSCALE_API_URL=" + sim.API}
	if image := os.Getenv("AUTOSCALER_CLOUDSCALE_SERVE_IMAGE"); image != "" {
		bin, args, env = inImage(tb, image, args, env)
	}
	p, _ := start(tb, "serve", bin, args, env, func(l string) bool { return strings.Contains(l, "serving gRPC") }, 30*time.Second)
	return &Server{Proc: p, Addr: addr}
}

// inImage turns `serve ARGS` into `podman run IMAGE serve ARGS` as the
// Deployment in deploy/ runs the container: uid 65532, read-only root, no
// capabilities, no privilege escalation. The host network keeps the loopback
// addresses; every file argument is copied into one directory mounted
// read-only at the same path. podman's settings come from CONTAINERS_CONF
// (scripts/image-build.sh --env).
func inImage(tb testing.TB, image string, args, env []string) (string, []string, []string) {
	tb.Helper()
	podman, err := exec.LookPath("podman")
	if err != nil {
		tb.Fatalf("AUTOSCALER_CLOUDSCALE_SERVE_IMAGE=%s needs podman: %v", image, err)
	}
	files := tb.TempDir()
	if err := os.Chmod(files, 0o755); err != nil {
		tb.Fatal(err)
	}
	out := append([]string(nil), args...)
	for i := 1; i < len(out); i++ {
		switch out[i-1] {
		case "--config", "--tls-cert", "--tls-key", "--tls-client-ca":
			data, err := os.ReadFile(out[i])
			if err != nil {
				tb.Fatal(err)
			}
			// Readable by the image's user, as a Secret volume's files are (defaultMode 0644).
			dst := filepath.Join(files, filepath.Base(out[i]))
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				tb.Fatal(err)
			}
			out[i] = dst
		}
	}
	name := fmt.Sprintf("acs-conformance-%d-%d", os.Getpid(), FreePort(tb))
	run := []string{"run", "--rm", "--name", name, "--network", "host", "--user", "65532:65532", "--read-only",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-v", files + ":" + files + ":ro"}
	for _, e := range env {
		run = append(run, "-e", e)
	}
	run = append(append(run, image), out...)
	tb.Cleanup(func() { _ = exec.Command(podman, "rm", "-f", "-t", "5", name).Run() })
	tb.Logf("serve runs in the image %s as container %s (uid 65532, read-only root)", image, name)
	return podman, run, nil
}

// WriteFile writes content to dir/name and returns the path.
func WriteFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// CloudConfig writes the file CA reads with --cloud-config: address,
// client cert/key and CA bundle when certs is non-nil (mTLS), and
// grpc_timeout. Without certs CA dials plaintext (h2c).
func CloudConfig(tb testing.TB, dir, name, address string, certs *Certs, grpcTimeout string) string {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "address: %q\n", address)
	if certs != nil {
		fmt.Fprintf(&b, "cert: %q\nkey: %q\ncacert: %q\n", certs.ClientCert, certs.ClientKey, certs.CA)
	}
	if grpcTimeout != "" {
		fmt.Fprintf(&b, "grpc_timeout: %q\n", grpcTimeout)
	}
	return WriteFile(tb, dir, name, b.String())
}
