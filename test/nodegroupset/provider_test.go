// The provider under test as Cluster Autoscaler builds it: the compiled binary's
// simulator and `serve`, and CA 1.36.1's own externalgrpc CloudProvider connected
// to it from a cloud-config file. Templates, prices and GPU answers all come from
// the binary over gRPC; nothing here is a hand-written node.
package nodegroupset

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc"
	"k8s.io/autoscaler/cluster-autoscaler/config"
	coreoptions "k8s.io/autoscaler/cluster-autoscaler/core/options"
	"k8s.io/autoscaler/cluster-autoscaler/simulator"
	"k8s.io/autoscaler/cluster-autoscaler/simulator/framework"
	"k8s.io/autoscaler/cluster-autoscaler/utils/taints"
)

const testToken = "test-token-7f3a9c2e51b84d06"

var simAPI string // the simulator's API URL, shared by every provider a test starts

func binary() string {
	if b := os.Getenv("AUTOSCALER_CLOUDSCALE_BIN"); b != "" {
		return b
	}
	b, _ := filepath.Abs("../../dist/autoscaler-cloudscale")
	return b
}

// process is a child process of the binary, started and waited for by its ready line.
type process struct {
	cmd    *exec.Cmd
	output *strings.Builder
}

func (p *process) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// start runs the binary with args and waits (at most 30 s) for a line matching ready; it returns the match.
func start(args []string, env []string, ready *regexp.Regexp) (*process, []string, error) {
	cmd := exec.Command(binary(), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", binary(), err)
	}
	p := &process{cmd: cmd, output: &strings.Builder{}}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			p.output.WriteString(line + "\n")
			if m := ready.FindStringSubmatch(line); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		return p, m, nil
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, nil, fmt.Errorf("%s %s did not become ready in 30 s:\n%s", binary(), args[0], p.output.String())
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(binary()); err != nil {
		fmt.Fprintf(os.Stderr, "the binary under test is missing (%v): run 'bun run build' or set AUTOSCALER_CLOUDSCALE_BIN\n", err)
		os.Exit(1)
	}
	sim, match, err := start([]string{"sim", "--listen", "127.0.0.1:0", "--boot-seconds", "0"}, nil, regexp.MustCompile(`sim: listening on (http://\S+)`))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	simAPI = match[1] + "/v1"
	code := m.Run()
	sim.stop()
	os.Exit(code)
}

// provider starts `serve` with this configuration (against the shared simulator) and
// returns the CloudProvider CA builds from a cloud-config that points at it.
func provider(t *testing.T, configYAML string) cloudprovider.CloudProvider {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	serve, match, err := start(
		[]string{"serve", "--config", cfg, "--listen", "127.0.0.1:0", "--insecure-plaintext"},
		[]string{"CLOUDSCALE_API_TOKEN=" + testToken, "CLOUDSCALE_API_URL=" + simAPI},
		regexp.MustCompile(`serving gRPC.*listen=127\.0\.0\.1:(\d+)`),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(serve.stop)
	cloudConfig := filepath.Join(dir, "cloud-config.yaml")
	if err := os.WriteFile(cloudConfig, []byte(fmt.Sprintf("address: 127.0.0.1:%s\ngrpc_timeout: 20s\n", match[1])), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &coreoptions.AutoscalerOptions{AutoscalingOptions: config.AutoscalingOptions{CloudConfig: cloudConfig}}
	cp := externalgrpc.BuildExternalGrpc(opts, cloudprovider.NodeGroupDiscoveryOptions{}, nil)
	if err := cp.Refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return cp
}

// templates are the node infos CA simulates each group with: the group's template, as
// CA sanitizes it (new name and host name, taints CA ignores removed); no DaemonSets.
func templates(t *testing.T, cp cloudprovider.CloudProvider) map[string]*framework.NodeInfo {
	t.Helper()
	out := map[string]*framework.NodeInfo{}
	for _, ng := range cp.NodeGroups() {
		ni, err := simulator.SanitizedTemplateNodeInfoFromNodeGroup(ng, nil, taints.TaintConfig{})
		if err != nil {
			t.Fatalf("template of %s: %v", ng.Id(), err)
		}
		out[ng.Id()] = ni
	}
	return out
}

func ids(groups []cloudprovider.NodeGroup) []string {
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		out = append(out, g.Id())
	}
	sort.Strings(out)
	return out
}

func group(t *testing.T, cp cloudprovider.CloudProvider, id string) cloudprovider.NodeGroup {
	t.Helper()
	for _, g := range cp.NodeGroups() {
		if g.Id() == id {
			return g
		}
	}
	t.Fatalf("no node group %s (groups: %v)", id, ids(cp.NodeGroups()))
	return nil
}
