package ca

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	apiv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc/protos"

	"autoscaler-cloudscale/test/ca/conformance"
)

// TestWireTemplateBothShapes reads one NodeGroupTemplateNodeInfo response raw,
// with CA 1.36.1's generated protos: it must carry the node both as nodeBytes
// (field 2, read by CA >= 1.34.2) and as nodeInfo (field 1, the only one CA
// <= 1.34.1 reads; unknown to 1.36.1's protos), and the two must be the same
// Node. No CA release reads both, so no CA code can check this.
func TestWireTemplateBothShapes(t *testing.T) {
	e := conformance.Start(t, release, false)
	conn, err := grpc.NewClient(e.Srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := protos.NewCloudProviderClient(conn)
	for _, id := range []string{"workers", "tuned", "large", "gpu"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := client.NodeGroupTemplateNodeInfo(ctx, &protos.NodeGroupTemplateNodeInfoRequest{Id: id})
		cancel()
		if err != nil {
			t.Fatalf("NodeGroupTemplateNodeInfo(%s): %v", id, err)
		}
		current := &apiv1.Node{}
		if err := current.Unmarshal(res.GetNodeBytes()); err != nil || len(res.GetNodeBytes()) == 0 {
			t.Errorf("NodeGroupTemplateNodeInfo(%s): nodeBytes (field 2) is %d bytes, decode error %v; expected a v1.Node", id, len(res.GetNodeBytes()), err)
			continue
		}
		raw, err := bytesField(res.ProtoReflect().GetUnknown(), 1)
		if err != nil {
			t.Errorf("NodeGroupTemplateNodeInfo(%s): nodeInfo (field 1): %v; expected the same v1.Node as in field 2 (CA <= 1.34.1 reads only field 1)", id, err)
			continue
		}
		legacy := &apiv1.Node{}
		if err := legacy.Unmarshal(raw); err != nil {
			t.Errorf("NodeGroupTemplateNodeInfo(%s): nodeInfo (field 1) does not decode as a v1.Node: %v", id, err)
			continue
		}
		if !equality.Semantic.DeepEqual(current, legacy) {
			t.Errorf("NodeGroupTemplateNodeInfo(%s): field 1 and field 2 carry different nodes:\nnodeInfo  %v\nnodeBytes %v", id, legacy, current)
		}
	}
}

// bytesField returns the value of the one length-delimited field num in a
// protobuf encoding.
func bytesField(b []byte, num protowire.Number) ([]byte, error) {
	var found []byte
	seen := 0
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return nil, protowire.ParseError(l)
			}
			found, seen = v, seen+1
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		b = b[l:]
	}
	if seen != 1 {
		return nil, fmt.Errorf("present %d times; expected once", seen)
	}
	return found, nil
}
