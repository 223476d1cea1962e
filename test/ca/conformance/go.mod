// The conformance sequence, built only as a dependency of test/ca (CA 1.36.1)
// and test/ca-legacy (CA 1.34.1): their replace lines choose the CA release
// and the k8s.io versions, so none are pinned here.
module autoscaler-cloudscale/test/ca/conformance

go 1.26

require (
	autoscaler-cloudscale/test/ca/harness v0.0.0
	k8s.io/autoscaler/cluster-autoscaler v0.0.0
)
