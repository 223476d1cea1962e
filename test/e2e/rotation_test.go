package e2e

// Scenario 8: CA's client certificate rotation. CA reads its certificate once,
// at start; cert-manager renews the Secret before the old certificate expires,
// and the old one keeps working on CA's open connection. The first reconnect
// after the expiry (here: the provider restarts) is refused, every loop fails,
// and after --max-failing-time CA's own /health-check answers 500: the
// livenessProbe of deploy/cluster-autoscaler.yaml on that endpoint makes the
// kubelet restart CA, which then reads the renewed certificate. kwok runs no
// containers, so the restart is done here as the kubelet would do it; the
// probe is checked against the manifest.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"autoscaler-cloudscale/test/ca/harness"
	"gopkg.in/yaml.v3"
)

func caHealth(a *autoscaler) (int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/health-check", a.metricsPort))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestScenario8ClientCertificateRotation(t *testing.T) {
	// The manifest's probe is the one that acts on CA's health check.
	probePath, probePort := caLivenessProbe(t)
	if probePath != "/health-check" || probePort != 8085 {
		t.Fatalf("deploy/cluster-autoscaler.yaml: livenessProbe %s on port %d; CA answers /health-check on its --address port, 8085 by default", probePath, probePort)
	}

	s := newScenario(t, "8 client certificate rotation", scenarioOpts{groups: []groupSpec{workers}, startupGrace: "1s"})
	const valid = 40 * time.Second
	issued := time.Now()
	oldCert, oldKey := s.cp.certs.ShortLivedClient(t, "ca-client-expiring", valid)
	if err := s.provider.start(); err != nil {
		s.fatalf("provider: %v", err)
	}
	startCA := func(name, cert, key string) {
		certs := *s.cp.certs
		certs.ClientCert, certs.ClientKey = cert, key
		cc := harness.CloudConfig(t, s.dir, name, s.provider.addr, &certs, "10s")
		port := harness.FreePort(t)
		// Under CA's own RBAC, with its ServiceAccount's token, as every scenario.
		kubeconfig, err := s.cp.caKubeconfig(s.dir)
		if err != nil {
			s.fatalf("cluster-autoscaler: %v", err)
		}
		flags := append(caFlags(kubeconfig, cc, port, s.opts.expander), "--max-failing-time=20s", "--max-inactivity=20s")
		ca, err := startAutoscaler(s.dir, suite.bins["cluster-autoscaler-1.36.1"], "1.36.1", flags, port)
		s.ca = ca
		if err != nil {
			s.fatalf("cluster-autoscaler: %v", err)
		}
	}
	startCA("cloud-config-old.yaml", oldCert, oldKey)
	s.waitLoops(0, 2, time.Minute)
	if code, err := caHealth(s.ca); code != 200 {
		s.fatalf("CA's /health-check with a valid certificate: %d %v", code, err)
	}

	// The certificate CA holds expires; its open connection keeps working.
	time.Sleep(time.Until(issued.Add(valid + 2*time.Second)))
	before := s.ca.loops()
	s.waitLoops(before, 1, time.Minute)
	s.logf("the certificate CA read at start expired %s after issue; CA's open connection still served a loop", valid)

	// The provider restarts; CA's reconnect with the expired certificate is refused.
	s.provider.current().Stop(10 * time.Second)
	if err := s.provider.start(); err != nil {
		s.fatalf("provider restart: %v", err)
	}
	// The restarted provider's Refresh calls, from its output as it arrives (the log file is written in blocks).
	refreshes := func() int { return strings.Count(s.provider.current().Tail(tailLines), "call method=Refresh") }
	t0 := time.Now()
	err := waitFor("CA's /health-check answers 500", s.ca.proc, 2*time.Minute, time.Second, func() (bool, error) {
		code, err := caHealth(s.ca)
		return code == 500, fmt.Errorf("HTTP %d %v", code, err)
	})
	if err != nil {
		s.fatalf("%v", err)
	}
	if got := refreshes(); got != 0 {
		s.errorf("the restarted provider served %d Refresh calls to a CA with an expired certificate", got)
	}
	if tail := s.provider.current().Tail(tailLines); !strings.Contains(tail, "certificate has expired") {
		s.errorf("the restarted provider logged no refused handshake:\n%s", tail)
	}
	s.logf("after the provider restarted, CA's /health-check answered 500 in %.1fs (--max-failing-time=20s): the livenessProbe restarts CA", time.Since(t0).Seconds())

	// The kubelet restarts CA, which reads the renewed certificate from the Secret.
	s.ca.Stop(10 * time.Second)
	startCA("cloud-config-renewed.yaml", s.cp.certs.ClientCert, s.cp.certs.ClientKey)
	s.waitLoops(0, 2, time.Minute)
	if code, err := caHealth(s.ca); code != 200 {
		s.fatalf("CA's /health-check after the restart with the renewed certificate: %d %v", code, err)
	}
	if err := waitFor("a Refresh from the restarted CA", s.ca.proc, time.Minute, 250*time.Millisecond, func() (bool, error) {
		return refreshes() > 0, nil
	}); err != nil {
		s.errorf("%v", err)
	}
	s.logf("restarted with the renewed certificate: loops succeed, /health-check 200")
}

// caLivenessProbe reads the livenessProbe of CA's container in deploy/cluster-autoscaler.yaml.
func caLivenessProbe(t *testing.T) (string, int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(suite.root, "deploy", "cluster-autoscaler.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name          string
						LivenessProbe struct {
							HTTPGet struct {
								Path string
								Port int
							} `yaml:"httpGet"`
						} `yaml:"livenessProbe"`
					}
				}
			}
		}
	}
	if err := yaml.NewDecoder(strings.NewReader(string(data))).Decode(&dep); err != nil {
		t.Fatal(err)
	}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == "cluster-autoscaler" {
			return c.LivenessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Port
		}
	}
	t.Fatal("deploy/cluster-autoscaler.yaml has no container cluster-autoscaler")
	return "", 0
}
