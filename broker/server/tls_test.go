package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/client"
)

// selfSigned returns a certificate for 127.0.0.1 and its PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "brokerd test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// One TLS listener serves gRPC, HTTP/2 and HTTP/1.1 JSON clients.
func TestTLSListenerServesEveryProtocol(t *testing.T) {
	ts := startServer(t)
	cert, caFile := selfSigned(t)

	srv := ts.srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A second Server on the same service: Serve with TLS.
	tlsSrv, err := New(srv.cfg)
	if err != nil {
		t.Fatal(err)
	}
	go tlsSrv.Serve(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	t.Cleanup(func() { tlsSrv.Shutdown(context.Background()) })
	url := "https://" + ln.Addr().String()

	c, err := client.New(client.Config{Address: url, Credentials: client.Token(ts.admin), CACertFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListScopes(context.Background()); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pem)
	// Each HTTP/2 JSON request on a fresh connection: splitting the
	// listener by protocol once made some of them fail with a GOAWAY.
	for _, h2 := range []bool{true, false, true, true, true, true, true, true, true, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr}).Get(url + "/v1/sys/health")
		if err != nil {
			t.Fatalf("HTTPS (h2 %t): %v", h2, err)
		}
		resp.Body.Close()
		wantMajor := 1
		if h2 {
			wantMajor = 2
		}
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != wantMajor {
			t.Errorf("HTTPS health (h2 %t) = %d over HTTP/%d, want 200 over HTTP/%d", h2, resp.StatusCode, resp.ProtoMajor, wantMajor)
		}
		tr.CloseIdleConnections()
	}
}

// ServeGRPC serves the same API on a listener of its own, in plain HTTP/2
// and over TLS, with the same authentication, and stops with Shutdown.
func TestServeGRPC(t *testing.T) {
	ts := startServer(t)
	cert, caFile := selfSigned(t)
	tests := []struct {
		name   string
		tls    *tls.Config
		scheme string
		caFile string
	}{
		{"plain", nil, "http", ""},
		{"tls", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, "https", caFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(ts.srv.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.ServeGRPC(ln, tt.tls) }()
			url := tt.scheme + "://" + ln.Addr().String()

			c, err := client.New(client.Config{Address: url, Credentials: client.Token(ts.admin), CACertFile: tt.caFile})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			env, _, err := c.Encrypt(ctx, "o_1", "database", []byte("over the gRPC listener"), nil)
			if err != nil {
				t.Fatalf("encrypt: %v", err)
			}
			pt, err := ts.client.Decrypt(ctx, "o_1", "database", env, nil)
			if err != nil || string(pt) != "over the gRPC listener" {
				t.Fatalf("decrypt on the main listener = %q, %v", pt, err)
			}

			anon, err := client.New(client.Config{Address: url, CACertFile: tt.caFile})
			if err != nil {
				t.Fatal(err)
			}
			defer anon.Close()
			if _, err := anon.ListScopes(ctx); status.Code(err) != codes.Unauthenticated {
				t.Errorf("call without a token = %v, want Unauthenticated", err)
			}

			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("ServeGRPC after Shutdown = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("ServeGRPC still serving after Shutdown")
			}
		})
	}
}
