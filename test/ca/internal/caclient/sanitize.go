package caclient

import (
	"fmt"
	"math/rand"
	"strings"

	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// Taints CA drops from a template (utils/taints: its own taints, node
// condition taints, and the ignore/startup/status prefixes of the default
// TaintConfig).
var droppedTaints = map[string]bool{
	"ToBeDeletedByClusterAutoscaler":                 true,
	"DeletionCandidateOfClusterAutoscaler":           true,
	apiv1.TaintNodeNotReady:                          true,
	apiv1.TaintNodeUnreachable:                       true,
	apiv1.TaintNodeUnschedulable:                     true,
	apiv1.TaintNodeMemoryPressure:                    true,
	apiv1.TaintNodeDiskPressure:                      true,
	apiv1.TaintNodeNetworkUnavailable:                true,
	apiv1.TaintNodePIDPressure:                       true,
	"node.cloudprovider.kubernetes.io/uninitialized": true,
	"node.cloudprovider.kubernetes.io/shutdown":      true,
	"cloud.google.com/impending-node-termination":    true,
	"NodeWithImpairedVolumes":                        true,
}

var droppedTaintPrefixes = []string{
	"ignore-taint.cluster-autoscaler.kubernetes.io/",
	"startup-taint.cluster-autoscaler.kubernetes.io/",
	"status-taint.cluster-autoscaler.kubernetes.io/",
}

// Sanitize does to a template what CA 1.36.1's
// simulator.SanitizedTemplateNodeInfoFromNodeGroup does to the Node (with
// default options and no DaemonSets): fresh name and UID, hostname label,
// taints filtered, the template-node label, deprecated label copies.
func Sanitize(in *apiv1.Node, groupID string) *apiv1.Node {
	n := in.DeepCopy()
	n.UID = uuid.NewUUID()
	n.Name = fmt.Sprintf("template-node-for-%s-%d", groupID, rand.Int63())
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[apiv1.LabelHostname] = n.Name
	var kept []apiv1.Taint
	for _, t := range n.Spec.Taints {
		if droppedTaints[t.Key] {
			continue
		}
		drop := false
		for _, p := range droppedTaintPrefixes {
			if strings.HasPrefix(t.Key, p) {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, t)
		}
	}
	n.Spec.Taints = kept
	n.Labels["cluster-autoscaler.kubernetes.io/template-node"] = "true"
	if v, ok := n.Labels[apiv1.LabelInstanceTypeStable]; ok {
		n.Labels[apiv1.LabelInstanceType] = v
	}
	if v, ok := n.Labels[apiv1.LabelTopologyRegion]; ok {
		n.Labels[apiv1.LabelZoneRegion] = v
	}
	if v, ok := n.Labels[apiv1.LabelTopologyZone]; ok {
		n.Labels[apiv1.LabelZoneFailureDomain] = v
	}
	return n
}
