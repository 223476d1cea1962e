package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are PEM files in Dir: a CA, a server certificate for 127.0.0.1 and
// localhost, and a client certificate, both signed by that CA; plus a client
// certificate signed by an unrelated CA (for refusal tests).
type Certs struct {
	Dir                   string
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	RogueCert, RogueKey   string // client cert from a CA the server does not trust

	ca *keyPair
}

// ShortLivedClient writes a client certificate of the same CA that expires
// after `valid` (name.pem, name-key.pem in Dir) and returns its paths.
func (c *Certs) ShortLivedClient(tb testing.TB, name string, valid time.Duration) (cert, key string) {
	tb.Helper()
	_, cc, ck := issue(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "cluster-autoscaler"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotAfter:    time.Now().Add(valid),
	}, c.ca)
	cert, key = filepath.Join(c.Dir, name+".pem"), filepath.Join(c.Dir, name+"-key.pem")
	if err := os.WriteFile(cert, cc, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(key, ck, 0o600); err != nil {
		tb.Fatal(err)
	}
	return cert, key
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newSerial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func issue(tb testing.TB, tmpl *x509.Certificate, parent *keyPair) (*keyPair, []byte, []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.SerialNumber = newSerial(tb)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return &keyPair{cert, key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func newCA(tb testing.TB, cn string) (*keyPair, []byte) {
	ca, certPEM, _ := issue(tb, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil)
	return ca, certPEM
}

// GenerateCerts writes a fresh set of test certificates into dir.
func GenerateCerts(tb testing.TB, dir string) *Certs {
	tb.Helper()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	c := &Certs{Dir: dir}
	ca, caPEM := newCA(tb, "autoscaler-cloudscale conformance CA")
	c.ca = ca
	c.CA = write("ca.pem", caPEM)
	_, sc, sk := issue(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "autoscaler-cloudscale"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
	c.ServerCert, c.ServerKey = write("server.pem", sc), write("server-key.pem", sk)
	_, cc, ck := issue(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "cluster-autoscaler"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	c.ClientCert, c.ClientKey = write("client.pem", cc), write("client-key.pem", ck)
	rogueCA, _ := newCA(tb, "unrelated CA")
	_, rc, rk := issue(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "intruder"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, rogueCA)
	c.RogueCert, c.RogueKey = write("rogue.pem", rc), write("rogue-key.pem", rk)
	return c
}
