module autoscaler-cloudscale/test/ca/harness

go 1.26
