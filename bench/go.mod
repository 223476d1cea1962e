// The benchmark of issue 6 (scripts/bench.sh builds and runs it; see README.md).
// The module path sits under test/ca only so that it may import
// test/ca/internal/wire (the grpc-go code of the externalgrpc proto): Go's
// internal rule goes by import path. The directory is bench/.
module autoscaler-cloudscale/test/ca/bench

go 1.26.0

require (
	autoscaler-cloudscale/test/ca v0.0.0
	autoscaler-cloudscale/test/ca/harness v0.0.0
	google.golang.org/grpc v1.81.1
)

require (
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.46.0 // indirect
	golang.org/x/text v0.38.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260226221140-a57be14db171 // indirect
	google.golang.org/protobuf v1.36.12-0.20260120151049-f2248ac996af // indirect
)

replace (
	autoscaler-cloudscale/test/ca => ../test/ca
	autoscaler-cloudscale/test/ca/harness => ../test/ca/harness
)
