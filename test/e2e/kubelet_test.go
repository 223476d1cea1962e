package e2e

// What "the VM boots and joins" registers: the Node a Talos worker's kubelet
// (plus the cloud controller manager's labels) would create for a server,
// computed only from what the provider sent in the create call (flavor, zone,
// root volume, the patched user-data) and a model of the VM. It deliberately
// shares no code or constant table with the provider's template (src/template.ts):
// if the template promised more than this node offers, pods CA expected to fit
// would stay pending and the scenarios would fail.

import (
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"testing"

	"gopkg.in/yaml.v3"
)

// simServer is the simulator's full server view (GET /_sim/servers).
type simServer struct {
	UUID   string `json:"uuid"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Flavor struct {
		Slug      string  `json:"slug"`
		VCPUCount int     `json:"vcpu_count"`
		MemoryGB  float64 `json:"memory_gb"`
	} `json:"flavor"`
	Image struct {
		Slug string `json:"slug"`
	} `json:"image"`
	Zone struct {
		Slug string `json:"slug"`
	} `json:"zone"`
	Volumes []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		SizeGB int    `json:"size_gb"`
	} `json:"volumes"`
	Tags      map[string]string `json:"tags"`
	UserData  *string           `json:"user_data"`
	CreatedAt string            `json:"created_at"`
}

const (
	clusterTag = "autoscaler-cloudscale-cluster"
	groupTag   = "autoscaler-cloudscale-group"
	// kwok fakes the kubelet of Nodes with this annotation (its --manage-nodes-with-annotation-selector).
	kwokAnnotation = "kwok.x-k8s.io/node"
	// joinedLabel marks the Nodes the joiner registered (it deletes only those).
	joinedLabel = "e2e.autoscaler-cloudscale/joined"
)

const (
	kib = 1024
	mib = 1024 * kib
	gib = 1024 * mib
)

// The VM model: what a KVM guest of a flavor reports to its kubelet. MemTotal
// lacks the struct page array (64 bytes per 4 KiB page, 1.5625%) and about
// 64 MiB of kernel image and firmware ranges; the kubelet's filesystem is the
// Talos EPHEMERAL partition: the disk less ~1.2 GiB of other partitions and
// ~1.5% of filesystem metadata.
func vmMemoryBytes(memoryGB float64) int64 {
	total := memoryGB * gib
	return int64(total-total*64/4096-64*mib) / kib * kib
}

func vmEphemeralBytes(volumeGB int) int64 {
	total := float64(volumeGB) * gib
	return int64(total-1.2*gib-total*0.015) / kib * kib
}

// Talos worker kubelet defaults (pkg/machinery/constants of https://github.com/siderolabs/talos):
// systemReserved cpu 50m, memory 384Mi, ephemeral-storage 256Mi; no kubeReserved.
// Kubelet defaults: evictionHard memory.available<100Mi, nodefs.available<10%; maxPods 110.
var talosSystemReserved = map[string]string{"cpu": "50m", "memory": "384Mi", "ephemeral-storage": "256Mi"}

// talosConfig is what the kubelet and Talos read from the machine config.
type talosConfig struct {
	hostname string
	labels   map[string]string
	taints   []taint
	kubelet  struct {
		SystemReserved map[string]string `yaml:"systemReserved"`
		KubeReserved   map[string]string `yaml:"kubeReserved"`
		EvictionHard   map[string]string `yaml:"evictionHard"`
		MaxPods        int               `yaml:"maxPods"`
		RegisterTaints []taint           `yaml:"registerWithTaints"`
	}
}

// parseTalos reads the multi-document Talos machine configuration.
func parseTalos(userData string) (*talosConfig, error) {
	c := &talosConfig{labels: map[string]string{}}
	dec := yaml.NewDecoder(strings.NewReader(userData))
	sawV1 := false
	for i := 1; ; i++ {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("user-data document %d: %v", i, err)
		}
		if doc == nil {
			continue
		}
		switch {
		case doc["version"] == "v1alpha1" && doc["kind"] == nil:
			sawV1 = true
			var v struct {
				Machine struct {
					NodeLabels map[string]string `yaml:"nodeLabels"`
					Network    struct {
						Hostname string `yaml:"hostname"`
					} `yaml:"network"`
					Kubelet struct {
						ExtraConfig yaml.Node `yaml:"extraConfig"`
					} `yaml:"kubelet"`
				} `yaml:"machine"`
			}
			if err := remarshal(doc, &v); err != nil {
				return nil, fmt.Errorf("v1alpha1 document: %v", err)
			}
			for k, val := range v.Machine.NodeLabels {
				c.labels[k] = val
			}
			if c.hostname == "" {
				c.hostname = v.Machine.Network.Hostname
			}
			if v.Machine.Kubelet.ExtraConfig.Kind != 0 {
				if err := v.Machine.Kubelet.ExtraConfig.Decode(&c.kubelet); err != nil {
					return nil, fmt.Errorf("machine.kubelet.extraConfig: %v", err)
				}
			}
		case doc["kind"] == "HostnameConfig":
			if h, ok := doc["hostname"].(string); ok {
				c.hostname = h
			}
			if a, ok := doc["auto"]; ok && a != "off" && c.hostname != "" {
				return nil, fmt.Errorf("HostnameConfig has both auto: %v and hostname (Talos rejects that)", a)
			}
		case doc["kind"] == "KubeNodeConfig":
			var v struct {
				Labels map[string]string `yaml:"labels"`
				Taints map[string]string `yaml:"taints"`
			}
			if err := remarshal(doc, &v); err != nil {
				return nil, fmt.Errorf("KubeNodeConfig: %v", err)
			}
			for k, val := range v.Labels {
				c.labels[k] = val
			}
			for k, ve := range v.Taints {
				value, effect, _ := strings.Cut(ve, ":")
				c.taints = append(c.taints, taint{Key: k, Value: value, Effect: effect})
			}
		}
	}
	if !sawV1 {
		return nil, fmt.Errorf("no v1alpha1 machine configuration document")
	}
	c.taints = append(c.taints, c.kubelet.RegisterTaints...)
	return c, nil
}

func remarshal(in any, out any) error {
	b, err := yaml.Marshal(in)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(b, out)
}

// joinedNode is the Node registered for a running server: named after the
// server, providerID cloudscale://<uuid>, labels/taints/resources from the
// create call. The error says what in the create call a real node could not
// have joined with (e.g. a host name other than the server name).
func joinedNode(s simServer) (*node, error) {
	if s.UserData == nil || *s.UserData == "" {
		return nil, fmt.Errorf("server %s was created without user-data", s.Name)
	}
	tc, err := parseTalos(*s.UserData)
	if err != nil {
		return nil, fmt.Errorf("server %s: %v", s.Name, err)
	}
	if tc.hostname != s.Name {
		return nil, fmt.Errorf("server %s: its user-data sets host name %q, so its node would register under another name", s.Name, tc.hostname)
	}
	root := 0
	for _, v := range s.Volumes {
		if v.Name == "root" || root == 0 {
			root = v.SizeGB
		}
	}
	capacity := resources{
		"cpu":               int64(s.Flavor.VCPUCount) * 1000,
		"memory":            vmMemoryBytes(s.Flavor.MemoryGB),
		"ephemeral-storage": vmEphemeralBytes(root),
		"pods":              110,
	}
	if tc.kubelet.MaxPods > 0 {
		capacity["pods"] = int64(tc.kubelet.MaxPods)
	}
	system := tc.kubelet.SystemReserved
	if system == nil {
		system = talosSystemReserved
	}
	eviction := map[string]string{"memory.available": "100Mi", "nodefs.available": "10%"}
	for k, v := range tc.kubelet.EvictionHard {
		eviction[k] = v
	}
	alloc := resources{}
	for k, v := range capacity {
		alloc[k] = v
	}
	for _, m := range []map[string]string{system, tc.kubelet.KubeReserved} {
		for k, q := range m {
			n, err := parseResource(k, q)
			if err != nil {
				return nil, fmt.Errorf("server %s: kubelet reservation %s=%q: %v", s.Name, k, q, err)
			}
			alloc[k] -= n
		}
	}
	threshold := func(signal, resource string) error {
		q := eviction[signal]
		if strings.HasSuffix(q, "%") {
			pct, err := strconv.ParseFloat(strings.TrimSuffix(q, "%"), 64)
			if err != nil {
				return err
			}
			alloc[resource] -= int64(math.Ceil(float64(capacity[resource]) * pct / 100))
			return nil
		}
		n, err := parseQuantity(q)
		alloc[resource] -= n
		return err
	}
	if err := threshold("memory.available", "memory"); err != nil {
		return nil, err
	}
	if err := threshold("nodefs.available", "ephemeral-storage"); err != nil {
		return nil, err
	}

	labels := map[string]string{
		// the kubelet's own
		"kubernetes.io/hostname": s.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		// the cloud controller manager's
		"node.kubernetes.io/instance-type": s.Flavor.Slug,
		"topology.kubernetes.io/zone":      s.Zone.Slug,
		"topology.kubernetes.io/region":    strings.TrimRight(s.Zone.Slug, "0123456789"),
		joinedLabel:                        "true",
	}
	for k, v := range tc.labels {
		labels[k] = v
	}
	n := &node{}
	n.Metadata.Name = s.Name
	n.Metadata.Labels = labels
	n.Metadata.Annotations = map[string]string{kwokAnnotation: "fake"}
	n.Spec.ProviderID = "cloudscale://" + s.UUID
	n.Spec.Taints = tc.taints
	n.Status.Capacity = capacity.strings()
	n.Status.Allocatable = alloc.strings()
	n.Status.NodeInfo = map[string]string{"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.36.2", "osImage": "Talos (" + s.Image.Slug + ")"}
	return n, nil
}

// resources are quantities in base units: millicores for cpu, bytes, counts.
type resources map[string]int64

func (r resources) strings() map[string]string {
	out := map[string]string{}
	for k, v := range r {
		if k == "cpu" {
			out[k] = fmt.Sprintf("%dm", v)
		} else if k == "memory" || k == "ephemeral-storage" {
			out[k] = fmt.Sprintf("%dKi", v/kib)
		} else {
			out[k] = strconv.FormatInt(v, 10)
		}
	}
	return out
}

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti|Pi|)$`)

// parseQuantity parses a Kubernetes quantity into base units (bytes, counts), rounded down.
func parseQuantity(q string) (int64, error) {
	m := quantityRE.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return 0, fmt.Errorf("not a quantity: %q", q)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": kib, "Mi": mib, "Gi": gib, "Ti": 1024 * gib, "Pi": 1024 * 1024 * gib}[m[2]]
	return int64(math.Floor(f * mult)), nil
}

// parseMillis parses a cpu quantity into millicores.
func parseMillis(q string) (int64, error) {
	q = strings.TrimSpace(q)
	if strings.HasSuffix(q, "m") {
		return strconv.ParseInt(strings.TrimSuffix(q, "m"), 10, 64)
	}
	f, err := strconv.ParseFloat(q, 64)
	return int64(math.Round(f * 1000)), err
}

// parseResource parses the quantity of a resource: cpu in millicores, the rest in base units.
func parseResource(name, q string) (int64, error) {
	if name == "cpu" {
		return parseMillis(q)
	}
	return parseQuantity(q)
}

// nodeResources reads a node's resource list (cpu in millicores).
func nodeResources(list map[string]string) (resources, error) {
	out := resources{}
	for k, v := range list {
		n, err := parseResource(k, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
		out[k] = n
	}
	return out, nil
}

// The joiner's kubelet model on a patched Talos worker config: host name from
// HostnameConfig, labels from machine.nodeLabels, taints from registerWithTaints,
// reservations from extraConfig (Talos's systemReserved default when absent).
func TestJoinedNodeFromPatchedUserData(t *testing.T) {
	ud := `version: v1alpha1
machine:
  type: worker
  kubelet:
    extraConfig:
      kubeReserved: {cpu: 100m, memory: 256Mi}
      registerWithTaints:
        - {key: dedicated, value: batch, effect: NoSchedule}
  nodeLabels:
    pool: batch
---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: c-batch-abcd1234
`
	var s simServer
	s.UUID, s.Name, s.Status = "u-1", "c-batch-abcd1234", "running"
	s.Flavor.Slug, s.Flavor.VCPUCount, s.Flavor.MemoryGB = "flex-8-2", 2, 8
	s.Zone.Slug = "lpg1"
	s.UserData = &ud
	s.Volumes = append(s.Volumes, struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		SizeGB int    `json:"size_gb"`
	}{"root", "ssd", 20})
	n, err := joinedNode(s)
	if err != nil {
		t.Fatal(err)
	}
	if n.Metadata.Name != s.Name || n.Spec.ProviderID != "cloudscale://u-1" {
		t.Errorf("name %q providerID %q", n.Metadata.Name, n.Spec.ProviderID)
	}
	if n.Metadata.Labels["pool"] != "batch" || n.Metadata.Labels["topology.kubernetes.io/region"] != "lpg" || n.Metadata.Labels["node.kubernetes.io/instance-type"] != "flex-8-2" {
		t.Errorf("labels %v", n.Metadata.Labels)
	}
	if taintSet(n.Spec.Taints) != "[dedicated=batch:NoSchedule]" {
		t.Errorf("taints %v", n.Spec.Taints)
	}
	alloc, err := nodeResources(n.Status.Allocatable)
	if err != nil {
		t.Fatal(err)
	}
	// cpu: 2000m - 50m (Talos systemReserved) - 100m (kubeReserved)
	if alloc["cpu"] != 1850 || alloc["pods"] != 110 {
		t.Errorf("allocatable %v", n.Status.Allocatable)
	}
	// memory: MemTotal - 384Mi - 256Mi - 100Mi eviction
	if want := vmMemoryBytes(8) - 740*mib; alloc["memory"] != want {
		t.Errorf("allocatable memory %d, want %d", alloc["memory"], want)
	}

	bad := strings.Replace(ud, "hostname: c-batch-abcd1234", "auto: stable", 1)
	s.UserData = &bad
	if _, err := joinedNode(s); err == nil || !strings.Contains(err.Error(), "host name") {
		t.Errorf("a config without the server's host name joined: %v", err)
	}
}
