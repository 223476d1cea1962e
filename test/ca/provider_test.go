package ca

import (
	"testing"

	"autoscaler-cloudscale/test/ca/internal/caclient"
)

// buildProvider builds the CloudProvider CA would build from this
// cloud-config file. This file is the only place that names the client; to
// drive CA's own externalgrpc package instead, replace it with one that calls
// externalgrpc.BuildExternalGrpc and adapts the result (see README.md).
func buildProvider(t *testing.T, cloudConfig string) caclient.CloudProvider {
	t.Helper()
	p, err := caclient.Build(cloudConfig)
	if err != nil {
		t.Fatalf("building the provider from %s as CA would: %v", cloudConfig, err)
	}
	return p
}
