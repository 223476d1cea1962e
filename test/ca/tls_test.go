package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/autoscaler/cluster-autoscaler/cloudprovider/externalgrpc/protos"

	"autoscaler-cloudscale/test/ca/conformance"
	"autoscaler-cloudscale/test/ca/harness"
)

// TestCA1361MTLSDial checks the TLS side of CA's dial against the server:
// an address by DNS name, and that clients without a certificate, or with
// one from another CA, are refused. What CA's cloud-config can express goes
// through BuildExternalGrpc; a TLS client without a certificate (CA sends
// one whenever it uses TLS) and the ALPN check are made here with CA's
// generated protos and Go's TLS.
func TestCA1361MTLSDial(t *testing.T) {
	e := conformance.Start(t, release, true)
	port := e.Srv.Addr[strings.LastIndex(e.Srv.Addr, ":")+1:]

	t.Run("AddressLocalhost", func(t *testing.T) {
		// CA sets ServerName to the host of address; the server certificate carries "localhost" as a DNS SAN.
		ca := release.Build(harness.CloudConfig(t, e.Dir, "cloud-config-localhost.yaml", "localhost:"+port, e.Certs, "5s"))
		if err := ca.Refresh(); err != nil {
			t.Fatalf("Refresh over mTLS to localhost:%s: CA read error %v; expected success", port, err)
		}
		if n := len(ca.NodeGroups()); n != 4 {
			t.Errorf("NodeGroups over mTLS to localhost: CA read %d groups; expected 4", n)
		}
	})

	t.Run("UntrustedClientCertificateRefused", func(t *testing.T) {
		rogue := *e.Certs
		rogue.ClientCert, rogue.ClientKey = e.Certs.RogueCert, e.Certs.RogueKey
		ca := release.Build(harness.CloudConfig(t, e.Dir, "cloud-config-rogue.yaml", e.Srv.Addr, &rogue, "5s"))
		if err := ca.Refresh(); err == nil {
			t.Errorf("Refresh with a client certificate from an unrelated CA: CA read success; expected the handshake refused")
		}
		if n := len(ca.NodeGroups()); n != 0 {
			t.Errorf("NodeGroups with a client certificate from an unrelated CA: CA read %d groups; expected none", n)
		}
	})

	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(e.Certs.CA)
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("reading the test CA: %v", err)
	}

	t.Run("NoClientCertificateRefused", func(t *testing.T) {
		conn, err := grpc.NewClient(e.Srv.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: pool})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := protos.NewCloudProviderClient(conn).Refresh(ctx, &protos.RefreshRequest{}); err == nil {
			t.Errorf("Refresh over TLS without a client certificate: the server answered; expected the handshake refused (client certificate required)")
		}
	})

	t.Run("ALPN", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(e.Certs.ClientCert, e.Certs.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", e.Srv.Addr, &tls.Config{ServerName: "127.0.0.1", RootCAs: pool, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS handshake as CA: %v", err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
			t.Errorf("TLS handshake: server negotiated ALPN %q; expected \"h2\" (grpc-go >= 1.67 refuses servers without it)", got)
		}
		if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("TLS handshake: version %s; expected TLS 1.2 or later", tls.VersionName(v))
		}
	})
}
