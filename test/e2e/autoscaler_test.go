package e2e

// Our provider (the compiled binary, over mutual TLS, against the simulator)
// and the real cluster-autoscaler binary, plus what the suite reads from them:
// CA's metrics and status ConfigMap, and the provider's per-call debug log.

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
	"gopkg.in/yaml.v3"
)

// groupSpec is one node group of a scenario's provider configuration.
type groupSpec struct {
	Name         string
	Flavor       string
	Min, Max     int
	PricePerHour float64 // 0: the built-in table
	Labels       map[string]string
	Taints       []taint
}

// talosWorker is the group's user-data: a Talos worker machine configuration as
// `talosctl gen config` shapes it (v1alpha1 plus a HostnameConfig document), with a
// kubelet kubeReserved the template must account for.
const talosWorker = `version: v1alpha1
debug: false
persist: true
machine:
  type: worker
  token: e2etok.0123456789abcdef
  ca:
    crt: ""
    key: ""
  kubelet:
    image: ghcr.io/siderolabs/kubelet:v1.36.2
    extraConfig:
      kubeReserved:
        cpu: 100m
        memory: 256Mi
  nodeLabels:
    e2e.autoscaler-cloudscale/machine-config: "talos"
  install:
    disk: /dev/sda
cluster:
  controlPlane:
    endpoint: https://127.0.0.1:6443
  clusterName: e2e
  network:
    dnsDomain: cluster.local
  token: e2e000.0000000000000000
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
`

// providerConfig renders the provider's config.yaml; settings are more top-level lines.
func providerConfig(cluster string, groups []groupSpec, startupGrace string, settings ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "clusterName: %s\nzone: lpg1\ncreateVerifyDelay: 1s\n", cluster)
	if startupGrace != "" {
		fmt.Fprintf(&b, "startupGrace: %s\n", startupGrace)
	}
	for _, line := range settings {
		b.WriteString(line)
	}
	b.WriteString("nodeGroups:\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "  - name: %s\n    flavor: %s\n    image: custom:talos-1.13.2\n    min: %d\n    max: %d\n    volumeSizeGb: 20\n    userDataFile: talos-worker.yaml\n", g.Name, g.Flavor, g.Min, g.Max)
		if g.PricePerHour > 0 {
			fmt.Fprintf(&b, "    pricePerHour: %g\n", g.PricePerHour)
		}
		if len(g.Labels) > 0 {
			b.WriteString("    labels:\n")
			keys := make([]string, 0, len(g.Labels))
			for k := range g.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "      %q: %q\n", k, g.Labels[k])
			}
		}
		if len(g.Taints) > 0 {
			b.WriteString("    taints:\n")
			for _, t := range g.Taints {
				fmt.Fprintf(&b, "      - {key: %q, value: %q, effect: %s}\n", t.Key, t.Value, t.Effect)
			}
		}
	}
	return b.String()
}

// provider is our binary serving CA over mutual TLS.
type provider struct {
	bin, dir, config string
	sim              *harness.Sim
	certs            *harness.Certs
	addr             string // 127.0.0.1:PORT, kept across restarts (CA's cloud-config names it)
	healthPort       int
	logLevel         string   // "" = debug: every call logged, which calls() counts
	procs            []*proc  // every start, in order
	pod              *podPlay // set: the provider runs as its Deployment's container (podplay_test.go)
}

func (p *provider) current() *proc {
	if len(p.procs) == 0 {
		return nil
	}
	return p.procs[len(p.procs)-1]
}

// start starts (or restarts) the provider and waits until /healthz answers and it logged "serving gRPC".
func (p *provider) start() error {
	name := fmt.Sprintf("provider-%d", len(p.procs)+1)
	if p.pod != nil {
		return p.startPod(name)
	}
	level := p.logLevel
	if level == "" {
		level = "debug"
	}
	pr, err := startProc(p.dir, name, p.bin, []string{
		"serve", "--config", p.config, "--listen", p.addr,
		"--tls-cert", p.certs.ServerCert, "--tls-key", p.certs.ServerKey, "--tls-client-ca", p.certs.CA,
		"--health-listen", fmt.Sprintf("127.0.0.1:%d", p.healthPort),
		"--log-level", level,
	}, []string{"CLOUDSCALE_API_TOKEN=e2e-sim-token", "CLOUDSCALE_API_URL=" + p.sim.API})
	if err != nil {
		return err
	}
	p.procs = append(p.procs, pr)
	return waitFor("provider serving", pr, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		if !strings.Contains(pr.Tail(tailLines), "serving gRPC") {
			return false, fmt.Errorf("no \"serving gRPC\" line yet")
		}
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", p.healthPort))
	})
}

// startPod plays the Deployment and follows the container's log as the provider's process.
func (p *provider) startPod(name string) error {
	if err := p.pod.play(); err != nil {
		return err
	}
	pr, err := startProc(p.dir, name, "podman", []string{"logs", "-f", p.pod.container}, p.pod.env)
	if err != nil {
		return err
	}
	p.procs = append(p.procs, pr)
	return waitFor("provider serving in its container", pr, 90*time.Second, 200*time.Millisecond, func() (bool, error) {
		if !strings.Contains(pr.Tail(tailLines), "serving gRPC") {
			return false, fmt.Errorf("no \"serving gRPC\" line yet")
		}
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", p.healthPort))
	})
}

func (p *provider) stop() {
	if p.pod != nil {
		p.pod.down()
	}
	for _, pr := range p.procs {
		pr.Stop(10 * time.Second)
	}
}

// callStats counts the provider's served calls from its debug log ("DEBUG call method=X").
type callStats struct {
	total    int
	byMethod map[string]int
	refresh  int
	maxLoop  int // most calls between two Refresh calls (one CA loop)
}

var callLine = regexp.MustCompile(`DEBUG call method=(\w+)`)

func (p *provider) calls() callStats {
	s := callStats{byMethod: map[string]int{}}
	for _, pr := range p.procs {
		data, err := os.ReadFile(pr.logPath)
		if err != nil {
			continue
		}
		// The provider is still running and writing: a last line without its newline is cut short.
		data = data[:bytes.LastIndexByte(data, '\n')+1]
		loop := 0
		for _, line := range strings.Split(string(data), "\n") {
			m := callLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			s.total++
			s.byMethod[m[1]]++
			if m[1] == "Refresh" {
				s.refresh++
				if loop > s.maxLoop {
					s.maxLoop = loop
				}
				loop = 0
			}
			loop++
		}
		// The loop running when the log was read counts too.
		if loop > s.maxLoop {
			s.maxLoop = loop
		}
	}
	return s
}

func (s callStats) String() string {
	if s.refresh == 0 {
		return fmt.Sprintf("%d calls, no Refresh", s.total)
	}
	keys := make([]string, 0, len(s.byMethod))
	for k := range s.byMethod {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return s.byMethod[keys[a]] > s.byMethod[keys[b]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, float64(s.byMethod[k])/float64(s.refresh)))
	}
	return fmt.Sprintf("%.1f calls per CA loop (max %d; %d calls over %d loops): %s", float64(s.total)/float64(s.refresh), s.maxLoop, s.total, s.refresh, strings.Join(parts, ", "))
}

// autoscaler is one run of the cluster-autoscaler binary.
type autoscaler struct {
	*proc
	version     string
	metricsPort int
}

// caFlags: CA's loop with short intervals (a scan every 5 s, a node unneeded for 15 s is removed) and
// its status ConfigMap on.
// Leader election is on, as in a cluster, with a long lease so that a busy machine never makes CA
// lose it (the suite deletes the Lease before each start; rbac_test.go).
func caFlags(kubeconfig, cloudConfig string, metricsPort int, expander string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--cloud-provider=externalgrpc", "--cloud-config=" + cloudConfig,
		"--namespace=" + caNamespace,
		"--leader-elect=true", "--leader-elect-lease-duration=60s", "--leader-elect-renew-deadline=45s", "--leader-elect-retry-period=5s",
		fmt.Sprintf("--address=127.0.0.1:%d", metricsPort),
		"--expander=" + expander,
		"--scan-interval=5s",
		"--scale-down-unneeded-time=15s", "--scale-down-delay-after-add=15s",
		"--scale-down-delay-after-delete=0s", "--scale-down-delay-after-failure=15s",
		"--unremovable-node-recheck-timeout=10s",
		"--max-node-provision-time=5m",
		"--write-status-configmap=true", "--status-config-map-name=cluster-autoscaler-status",
		"--v=4",
	}
}

func startAutoscaler(dir, bin, version string, flags []string, metricsPort int) (*autoscaler, error) {
	p, err := startProc(dir, "cluster-autoscaler-"+version, bin, flags, nil)
	if err != nil {
		return nil, err
	}
	a := &autoscaler{proc: p, version: version, metricsPort: metricsPort}
	return a, waitFor("cluster-autoscaler metrics endpoint", p, 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
		_, err := a.metrics()
		return err == nil, err
	})
}

// metrics returns CA's Prometheus text exposition.
func (a *autoscaler) metrics() (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", a.metricsPort))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return string(b), err
}

// histogram is one series of cluster_autoscaler_function_duration_seconds.
type histogram struct {
	count   float64
	sum     float64
	buckets [][2]float64 // (le, cumulative count), sorted by le
}

func (h histogram) mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / h.count
}

// quantile is the upper bound of the bucket holding the q-quantile.
func (h histogram) quantile(q float64) float64 {
	for _, b := range h.buckets {
		if b[1] >= q*h.count {
			return b[0]
		}
	}
	return math.Inf(1)
}

// functionDuration parses cluster_autoscaler_function_duration_seconds{function=fn}.
func functionDuration(text, fn string) histogram {
	var h histogram
	prefix := "cluster_autoscaler_function_duration_seconds"
	sel := `function="` + fn + `"`
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, sel) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, prefix+"_sum"):
			h.sum = v
		case strings.HasPrefix(line, prefix+"_count"):
			h.count = v
		case strings.HasPrefix(line, prefix+"_bucket"):
			m := regexp.MustCompile(`le="([^"]+)"`).FindStringSubmatch(line)
			if m == nil {
				continue
			}
			le, err := strconv.ParseFloat(m[1], 64)
			if m[1] == "+Inf" {
				le, err = math.Inf(1), nil
			}
			if err == nil {
				h.buckets = append(h.buckets, [2]float64{le, v})
			}
		}
	}
	sort.Slice(h.buckets, func(a, b int) bool { return h.buckets[a][0] < h.buckets[b][0] })
	return h
}

// loops is how many main loops CA has run (0 if the metric cannot be read).
func (a *autoscaler) loops() int {
	text, err := a.metrics()
	if err != nil {
		return 0
	}
	return int(functionDuration(text, "main").count)
}

// caStatus is the part of CA's status ConfigMap the suite reads.
type caStatus struct {
	AutoscalerStatus string `yaml:"autoscalerStatus"`
	ClusterWide      struct {
		Health struct {
			Status string `yaml:"status"`
		} `yaml:"health"`
		ScaleUp struct {
			Status string `yaml:"status"`
		} `yaml:"scaleUp"`
		ScaleDown struct {
			Status     string `yaml:"status"`
			Candidates int    `yaml:"candidates"`
		} `yaml:"scaleDown"`
	} `yaml:"clusterWide"`
	NodeGroups []struct {
		Name   string `yaml:"name"`
		Health struct {
			Status              string `yaml:"status"`
			CloudProviderTarget int    `yaml:"cloudProviderTarget"`
		} `yaml:"health"`
		ScaleUp struct {
			Status      string `yaml:"status"`
			BackoffInfo struct {
				ErrorCode    string `yaml:"errorCode"`
				ErrorMessage string `yaml:"errorMessage"`
			} `yaml:"backoffInfo"`
		} `yaml:"scaleUp"`
	} `yaml:"nodeGroups"`
}

// statusText returns CA's status ConfigMap text ("" if none yet).
func statusText(k *kube) (string, error) {
	data, err := k.configMapData("kube-system", "cluster-autoscaler-status")
	if err != nil || data == nil {
		return "", err
	}
	return data["status"], nil
}

func parseStatus(text string) (*caStatus, error) {
	var s caStatus
	if err := yaml.Unmarshal([]byte(text), &s); err != nil {
		return nil, err
	}
	return &s, nil
}
