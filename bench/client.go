package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	// The real cluster-autoscaler binary links grpc-go's gzip compressor (through its dependencies), so every
	// call it makes says "grpc-accept-encoding: gzip". Linked here too, the benchmark's calls say the same.
	_ "google.golang.org/grpc/encoding/gzip"
)

// cloudConfig holds the keys of CA's externalgrpc --cloud-config, read from
// the file harness.CloudConfig writes (`key: "quoted value"` lines).
type cloudConfig struct {
	Address, Cert, Key, Cacert string
	Timeout                    time.Duration
}

func readCloudConfig(path string) (*cloudConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &cloudConfig{Timeout: 5 * time.Second}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(strings.TrimSpace(v)); err == nil {
			v = u
		}
		switch strings.TrimSpace(k) {
		case "address":
			c.Address = v
		case "cert":
			c.Cert = v
		case "key":
			c.Key = v
		case "cacert":
			c.Cacert = v
		case "grpc_timeout":
			if d, err := time.ParseDuration(v); err == nil {
				c.Timeout = d
			}
		}
	}
	return c, nil
}

// caCredentials is CA's TLS: the client certificate, cacert as the only
// roots, ServerName = host of address (grpc-go adds ALPN h2).
func caCredentials(c *cloudConfig) (credentials.TransportCredentials, error) {
	host, _, err := net.SplitHostPort(c.Address)
	if err != nil {
		return nil, fmt.Errorf("failed to parse address: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("failed to parse cert key pair: %v", err)
	}
	caPEM, err := os.ReadFile(c.Cacert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("failed to parse ca")
	}
	return credentials.NewTLS(&tls.Config{ServerName: host, Certificates: []tls.Certificate{pair}, RootCAs: pool}), nil
}

// dialAsCA dials as CA 1.36.1's externalgrpc client does: grpc.Dial (non-blocking,
// passthrough resolver) with those credentials and nothing else.
func dialAsCA(path string) (*grpc.ClientConn, *cloudConfig, error) {
	c, err := readCloudConfig(path)
	if err != nil {
		return nil, nil, err
	}
	creds, err := caCredentials(c)
	if err != nil {
		return nil, nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if *flagWindow > 0 { // an experiment only: CA sets no window
		opts = append(opts, grpc.WithInitialWindowSize(int32(*flagWindow)), grpc.WithInitialConnWindowSize(int32(*flagWindow)))
	}
	//lint:ignore SA1019 CA 1.36.1 uses grpc.Dial.
	conn, err := grpc.Dial(c.Address, opts...) //nolint:staticcheck
	return conn, c, err
}

// dialProbe is dialAsCA plus a dialer that retries the TCP connect every
// millisecond, so that the start-time probe is not held up by grpc-go's
// reconnect backoff (1 s) while the process is not listening yet.
func dialProbe(path string, deadline time.Time) (*grpc.ClientConn, error) {
	c, err := readCloudConfig(path)
	if err != nil {
		return nil, err
	}
	creds, err := caCredentials(c)
	if err != nil {
		return nil, err
	}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		for {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				return conn, nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, err
			}
			time.Sleep(time.Millisecond)
		}
	}
	//nolint:staticcheck
	return grpc.Dial(c.Address, grpc.WithTransportCredentials(creds), grpc.WithContextDialer(dialer))
}

// ---------------------------------------------------------------- processes

// child is a process the benchmark started itself (the baseline, and the
// provider for start-time trials): own process group, killed with us.
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func (c *child) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *child) Pid() int { return c.cmd.Process.Pid }

// Stop sends SIGTERM to the group, SIGKILL after 5 s.
func (c *child) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// spawn starts path with args; ready (may be nil) is called with each output line.
func spawn(tb testing.TB, path string, args, env []string, ready func(string)) *child {
	tb.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	c := &child{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("cannot start %s: %v", path, err)
	}
	tb.Cleanup(c.Stop)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			if c.out.Len() < 1<<20 {
				c.out.WriteString(line + "\n")
			}
			c.mu.Unlock()
			if ready != nil {
				ready(line)
			}
		}
		_ = cmd.Wait()
		close(c.done)
	}()
	return c
}

// childPID finds our child process whose command line contains all of want
// (the harness does not expose the PIDs of the processes it starts).
func childPID(want ...string) (int, error) {
	me := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after the last ')'.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(me) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(cmdline), "\x00", " ")
		all := true
		for _, w := range want {
			all = all && strings.Contains(cl, w)
		}
		if all {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process of %d with %q in its command line", me, want)
}

// rssMiB reads VmRSS from /proc/<pid>/status.
func rssMiB(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssParts is VmRSS split as the kernel counts it: anonymous memory (heaps,
// stacks), file-backed pages (the mapped executable and libraries), shmem.
func rssParts(pid int) map[string]float64 {
	out := map[string]float64{}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(raw), "\n") {
		for _, k := range []string{"VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"} {
			if strings.HasPrefix(line, k+":") {
				if f := strings.Fields(line); len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					out[k+"MiB"] = round(kb/1024, 1)
				}
			}
		}
	}
	return out
}

// cpuSeconds is the process's user+system CPU time so far (/proc/<pid>/stat).
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// ---------------------------------------------------------------- statistics

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func sortDurations(d []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), d...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
