package e2e

// A small Kubernetes REST client (standard library only, so this module does
// not pin any k8s.io version) and the few object shapes the suite reads and
// writes.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

type kube struct {
	base  string // https://127.0.0.1:PORT
	token string
	http  *http.Client
}

func newKube(base, token, caFile string) (*kube, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &kube{base: base, token: token, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 8},
	}}, nil
}

type kubeError struct {
	Code int
	Body string
}

func (e *kubeError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Code, strings.TrimSpace(e.Body))
}

func isNotFound(err error) bool {
	ke, ok := err.(*kubeError)
	return ok && ke.Code == http.StatusNotFound
}

func isConflict(err error) bool {
	ke, ok := err.(*kubeError)
	return ok && ke.Code == http.StatusConflict
}

// do sends one request; body (if any) is JSON-encoded; out (if any) is decoded from the answer.
func (k *kube) do(method, path, contentType string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+k.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &kubeError{Code: resp.StatusCode, Body: string(data)}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (k *kube) get(path string, out any) error    { return k.do("GET", path, "", nil, out) }
func (k *kube) create(path string, obj any) error { return k.do("POST", path, "", obj, nil) }
func (k *kube) delete(path string) error          { return k.do("DELETE", path, "", nil, nil) }
func (k *kube) mergePatch(path string, p any) error {
	return k.do("PATCH", path, "application/merge-patch+json", p, nil)
}

// Object shapes (only the fields the suite uses).

type objectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
}

type taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

func (t taint) String() string { return fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect) }

type condition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

type node struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		ProviderID    string  `json:"providerID,omitempty"`
		Taints        []taint `json:"taints,omitempty"`
		Unschedulable bool    `json:"unschedulable,omitempty"`
	} `json:"spec"`
	Status struct {
		Capacity    map[string]string `json:"capacity,omitempty"`
		Allocatable map[string]string `json:"allocatable,omitempty"`
		Conditions  []condition       `json:"conditions,omitempty"`
		NodeInfo    map[string]string `json:"nodeInfo,omitempty"`
	} `json:"status"`
}

func (n *node) ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

type pod struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		NodeName string `json:"nodeName,omitempty"`
	} `json:"spec"`
	Status struct {
		Phase      string      `json:"phase"`
		Conditions []condition `json:"conditions,omitempty"`
	} `json:"status"`
}

type event struct {
	Metadata       objectMeta `json:"metadata"`
	InvolvedObject struct {
		Kind, Name, Namespace string
	} `json:"involvedObject"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Count   int    `json:"count"`
	Source  struct {
		Component string `json:"component"`
	} `json:"source"`
}

func (k *kube) nodes(selector string) ([]node, error) {
	var l struct{ Items []node }
	path := "/api/v1/nodes"
	if selector != "" {
		path += "?labelSelector=" + url.QueryEscape(selector)
	}
	err := k.get(path, &l)
	return l.Items, err
}

func (k *kube) pods(ns, selector string) ([]pod, error) {
	var l struct{ Items []pod }
	path := "/api/v1/namespaces/" + ns + "/pods"
	if selector != "" {
		path += "?labelSelector=" + url.QueryEscape(selector)
	}
	err := k.get(path, &l)
	return l.Items, err
}

func (k *kube) events(ns string) ([]event, error) {
	var l struct{ Items []event }
	err := k.get("/api/v1/namespaces/"+ns+"/events", &l)
	return l.Items, err
}

// configMapData returns a ConfigMap's data ("" and nil when it does not exist yet).
func (k *kube) configMapData(ns, name string) (map[string]string, error) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	err := k.get("/api/v1/namespaces/"+ns+"/configmaps/"+name, &cm)
	if isNotFound(err) {
		return nil, nil
	}
	return cm.Data, err
}

func (k *kube) createNamespace(name string) error {
	err := k.create("/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}})
	if isConflict(err) {
		return nil
	}
	return err
}

// deployment describes the pause Deployment of a scenario.
type deployment struct {
	Namespace, Name string
	Replicas        int
	CPU, Memory     string // requests
	Tolerations     []map[string]any
	NodeSelector    map[string]string
}

func (d deployment) object() map[string]any {
	labels := map[string]any{"app": d.Name}
	spec := map[string]any{
		"containers": []any{map[string]any{
			"name":      "pause",
			"image":     "registry.k8s.io/pause:3.10",
			"resources": map[string]any{"requests": map[string]any{"cpu": d.CPU, "memory": d.Memory}},
		}},
		"terminationGracePeriodSeconds": 0,
		"automountServiceAccountToken":  false,
	}
	if len(d.Tolerations) > 0 {
		spec["tolerations"] = d.Tolerations
	}
	if len(d.NodeSelector) > 0 {
		spec["nodeSelector"] = d.NodeSelector
	}
	return map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": d.Name, "namespace": d.Namespace},
		"spec": map[string]any{
			"replicas": d.Replicas,
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels}, "spec": spec},
		},
	}
}

func (k *kube) createDeployment(d deployment) error {
	return k.create("/apis/apps/v1/namespaces/"+d.Namespace+"/deployments", d.object())
}

func (k *kube) scaleDeployment(ns, name string, replicas int) error {
	return k.mergePatch("/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, map[string]any{"spec": map[string]any{"replicas": replicas}})
}

func (k *kube) deleteDeployment(ns, name string) error {
	err := k.do("DELETE", "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, "", map[string]any{"propagationPolicy": "Background"}, nil)
	if isNotFound(err) {
		return nil
	}
	return err
}

// podPhases counts the pods of a selector by phase; "Pending" is split into
// "Pending" (unbound) and "Bound" (bound, not yet running).
func podPhases(pods []pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		if p.Metadata.DeletionTimestamp != nil {
			out["Terminating"]++
			continue
		}
		ph := p.Status.Phase
		if ph == "Pending" && p.Spec.NodeName != "" {
			ph = "Bound"
		}
		out[ph]++
	}
	return out
}
