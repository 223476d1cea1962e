package e2e

// Cluster Autoscaler under the project's own RBAC: the apiserver authorizes with
// RBAC, deploy/'s ServiceAccount, roles and bindings for CA are applied as
// `kubectl kustomize deploy/` renders them, and every CA the suite starts uses a
// kubeconfig with a token of that ServiceAccount (TokenRequest), not the admin
// token. A request the apiserver forbids fails the scenario: CA logs it and
// carries on, so passing alone would not prove the permissions are enough.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	caNamespace      = "kube-system"
	caServiceAccount = "cluster-autoscaler"
)

// kubectl runs the cached kubectl against the control plane as the admin; stdin may be empty.
func (cp *controlPlane) kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command(suite.bins["kubectl"], append([]string{"--kubeconfig=" + cp.kubeconfig}, args...)...)
	cmd.Dir = suite.root
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// renderedDocs splits a multi-document YAML stream into its objects.
func renderedDocs(text string) ([]map[string]any, error) {
	var out []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

func kindName(o map[string]any) (string, string) {
	kind, _ := o["kind"].(string)
	md, _ := o["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	return kind, name
}

// applyCARBAC applies deploy/'s ServiceAccount, ClusterRole(Binding) and
// Role(Binding) for CA, as kustomize renders them, server-side.
func (cp *controlPlane) applyCARBAC() error {
	rendered, err := cp.kubectl("", "kustomize", filepath.Join(suite.root, "deploy"))
	if err != nil {
		return err
	}
	docs, err := renderedDocs(rendered)
	if err != nil {
		return err
	}
	rbacKinds := map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}
	var picked []string
	var kinds []string
	for _, d := range docs {
		kind, name := kindName(d)
		if !rbacKinds[kind] || name != caServiceAccount {
			continue
		}
		b, err := yaml.Marshal(d)
		if err != nil {
			return err
		}
		picked = append(picked, string(b))
		kinds = append(kinds, kind)
	}
	if len(picked) != len(rbacKinds) {
		return fmt.Errorf("kubectl kustomize deploy/ renders %v named %s; want one of each of %d RBAC kinds", kinds, caServiceAccount, len(rbacKinds))
	}
	_, err = cp.kubectl(strings.Join(picked, "---\n"), "apply", "--server-side", "--field-manager=e2e", "-f", "-")
	return err
}

// caKubeconfig writes a kubeconfig for CA with a fresh token of its
// ServiceAccount (TokenRequest, valid for two hours) and deletes CA's
// leader-election Lease, so that the CA about to start takes it at once.
func (cp *controlPlane) caKubeconfig(dir string) (string, error) {
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	req := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{"expirationSeconds": 7200}}
	if err := cp.kube.do("POST", "/api/v1/namespaces/"+caNamespace+"/serviceaccounts/"+caServiceAccount+"/token", "", req, &tr); err != nil {
		return "", fmt.Errorf("TokenRequest for %s/%s: %v", caNamespace, caServiceAccount, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("TokenRequest for %s/%s: no token in the answer", caNamespace, caServiceAccount)
	}
	if err := cp.kube.delete("/apis/coordination.k8s.io/v1/namespaces/" + caNamespace + "/leases/cluster-autoscaler"); err != nil && !isNotFound(err) {
		return "", err
	}
	path := filepath.Join(dir, "cluster-autoscaler.kubeconfig")
	return path, writeFile(path, kubeconfigYAML(cp.apiURL, cp.certs.CA, tr.Status.Token))
}

// forbiddenLine matches what client-go logs when the apiserver answers 403.
var forbiddenLine = regexp.MustCompile(`(?i)\bforbidden\b.*system:serviceaccount:|is forbidden`)

// forbidden returns the distinct lines of CA's log in which the apiserver refused it.
func forbidden(logPath string) []string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return []string{err.Error()}
	}
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if !forbiddenLine.MatchString(l) {
			continue
		}
		// The same refusal repeats every loop: keep one of each.
		key := l
		if i := strings.Index(l, "]"); i >= 0 {
			key = l[i:]
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, l)
		}
	}
	return out
}
