package ca

import (
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc"
	"k8s.io/autoscaler/cluster-autoscaler/config"
	coreoptions "k8s.io/autoscaler/cluster-autoscaler/core/options"

	"autoscaler-cloudscale/test/ca/conformance"
)

// release builds the provider as CA 1.36.1's main does for
// --cloud-provider=externalgrpc --cloud-config=<file>.
var release = conformance.Release{
	Version: "1.36.1",
	Build: func(cloudConfig string) cloudprovider.CloudProvider {
		opts := &coreoptions.AutoscalerOptions{AutoscalingOptions: config.AutoscalingOptions{
			CloudProviderName: cloudprovider.ExternalGrpcProviderName,
			CloudConfig:       cloudConfig,
		}}
		return externalgrpc.BuildExternalGrpc(opts, cloudprovider.NodeGroupDiscoveryOptions{}, nil)
	},
}
