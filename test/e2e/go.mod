module autoscaler-cloudscale/test/e2e

go 1.26.0

require (
	autoscaler-cloudscale/test/ca/harness v0.0.0
	gopkg.in/yaml.v3 v3.0.1
)

replace autoscaler-cloudscale/test/ca/harness => ../ca/harness
