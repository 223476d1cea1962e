package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"autoscaler-cloudscale/test/ca/harness"
	"autoscaler-cloudscale/test/ca/internal/wire"
)

// TestCA1361MTLSDial checks the TLS side of CA's dial against the server:
// the cloud-config naming the host as "localhost" (DNS SAN), and that a
// client without a certificate, or with one from another CA, is refused.
func TestCA1361MTLSDial(t *testing.T) {
	bin := harness.Binary(t)
	dir := t.TempDir()
	sim := harness.StartSim(t, bin, "--boot-seconds", "1")
	cfg := harness.WriteFile(t, dir, "provider.yaml", providerConfig)
	certs := harness.GenerateCerts(t, dir)
	srv := harness.StartServe(t, bin, cfg, sim, certs)
	port := srv.Addr[strings.LastIndex(srv.Addr, ":")+1:]

	t.Run("AddressLocalhost", func(t *testing.T) {
		// CA sets ServerName to "localhost"; the server certificate carries it as a DNS SAN.
		cc := harness.CloudConfig(t, dir, "cloud-config-localhost.yaml", "127.0.0.1:"+port, certs, "5s")
		raw, _ := os.ReadFile(cc)
		cc = harness.WriteFile(t, dir, "cloud-config-localhost.yaml", strings.Replace(string(raw), "127.0.0.1:", "localhost:", 1))
		p := buildProvider(t, cc)
		if err := p.Refresh(); err != nil {
			t.Fatalf("Refresh over mTLS to localhost:%s: CA read error %v; expected success", port, err)
		}
		if n := len(p.NodeGroups()); n != 4 {
			t.Errorf("NodeGroups over mTLS to localhost: CA read %d groups; expected 4", n)
		}
	})

	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("reading the test CA: %v", err)
	}
	refresh := func(cfg *tls.Config) error {
		//lint:ignore SA1019 as CA dials
		conn, err := grpc.Dial(srv.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg))) //nolint:staticcheck
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = wire.NewCloudProviderClient(conn).Refresh(ctx, &wire.RefreshRequest{})
		return err
	}
	t.Run("NoClientCertificateRefused", func(t *testing.T) {
		if err := refresh(&tls.Config{ServerName: "127.0.0.1", RootCAs: pool}); err == nil {
			t.Errorf("Refresh without a client certificate: the server answered; expected the TLS handshake refused (client certificate required)")
		}
	})
	t.Run("UntrustedClientCertificateRefused", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(certs.RogueCert, certs.RogueKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := refresh(&tls.Config{ServerName: "127.0.0.1", RootCAs: pool, Certificates: []tls.Certificate{pair}}); err == nil {
			t.Errorf("Refresh with a client certificate from an unrelated CA: the server answered; expected it refused")
		}
	})
	t.Run("ALPN", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{ServerName: "127.0.0.1", RootCAs: pool, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS handshake as CA: %v", err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
			t.Errorf("TLS handshake: server negotiated ALPN %q; expected \"h2\" (grpc-go >= 1.67 refuses servers without it)", got)
		}
		if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("TLS handshake: version %s; expected TLS 1.2 or later", fmt.Sprint(v))
		}
	})
}
