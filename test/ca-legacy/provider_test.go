package legacy

import (
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc"
	"k8s.io/autoscaler/cluster-autoscaler/config"

	"autoscaler-cloudscale/test/ca/conformance"
)

// release builds the provider as CA 1.34.1's main does for
// --cloud-provider=externalgrpc --cloud-config=<file> (in this release
// BuildExternalGrpc takes the options by value). 1.34.1 reads only the old
// wire shape: template in nodeInfo (field 1), option durations as
// meta.v1.Duration (3/4/5), pricing times as meta.v1.Time (2/3) and the Pod
// embedded in field 1.
var release = conformance.Release{
	Version: "1.34.1",
	Build: func(cloudConfig string) cloudprovider.CloudProvider {
		return externalgrpc.BuildExternalGrpc(config.AutoscalingOptions{
			CloudProviderName: cloudprovider.ExternalGrpcProviderName,
			CloudConfig:       cloudConfig,
		}, cloudprovider.NodeGroupDiscoveryOptions{}, nil)
	},
}
