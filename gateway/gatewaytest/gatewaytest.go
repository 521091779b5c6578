// Package gatewaytest starts a real tdxl gateway (TLS on loopback) for other
// packages' tests: the verifier's end-to-end tests and a backend end-to-end
// test through the gateway.
//
//	backend := httptest.NewServer(...)            // or a real tdxl-backend on 127.0.0.1:PORT
//	gw := gatewaytest.Start(t, gatewaytest.Options{Backend: backend.URL, Issuer: iss})
//	resp, err := gw.Client().Get(gw.URL + "/.well-known/tdxl/attestation?nonce=" + hexNonce)
//
// The gateway stops when the test ends. Its certificate is self-signed
// unless Options.Configure says otherwise; Client() skips CA verification
// (the attested key is what a real client pins) and records the certificate
// it saw.
package gatewaytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway"
)

// Options configures Start.
type Options struct {
	// Backend is the backend URL (http://127.0.0.1:PORT or unix:/path).
	// Required.
	Backend string
	// Issuer produces evidence: a simulated TEE (attest/testtee) or an
	// unattested one. Required.
	Issuer attest.Issuer
	// Runtime is the event log the evidence carries (ignored when
	// Configure sets Measure).
	Runtime gateway.Runtime
	// Configure may change the configuration before the gateway starts
	// (TLS mode, limits, Measure, ...). Listener and Logger are preset.
	Configure func(*gateway.Config)
	// StartTimeout bounds the wait for readiness. Default 30s.
	StartTimeout time.Duration
}

// Gateway is a running test gateway.
type Gateway struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// Addr is the listening address.
	Addr string
	// G is the gateway itself.
	G *gateway.Gateway

	mu   sync.Mutex
	seen *x509.Certificate
}

// Start starts a gateway on 127.0.0.1:0 and waits until it is ready. It
// fails the test on error and stops the gateway in tb.Cleanup.
func Start(tb testing.TB, o Options) *Gateway {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("gatewaytest: listening: %v", err)
	}
	cfg := gateway.Config{
		Listener: ln, Backend: o.Backend, Issuer: o.Issuer, Runtime: o.Runtime,
		Version:         "gatewaytest",
		SelfSignedNames: []string{"localhost", "127.0.0.1"},
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		NonceRate:       1000, NonceBurst: 1000,
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		ln.Close()
		tb.Fatalf("gatewaytest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("gatewaytest: gateway stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Errorf("gatewaytest: gateway did not stop")
		}
	})
	timeout := o.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for !g.Ready() {
		select {
		case err := <-done:
			tb.Fatalf("gatewaytest: gateway stopped before ready: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gatewaytest: gateway not ready after %v", timeout)
		}
	}
	addr := ln.Addr().String()
	return &Gateway{URL: "https://" + addr, Addr: addr, G: g}
}

// Client returns an HTTP client for the gateway that accepts any server
// certificate (tests pin it themselves) and records the last one it saw
// (see PeerCertificate). It does not keep connections alive, so each
// request makes a new handshake.
func (gw *Gateway) Client() *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, //nolint:gosec // test client; the attested key is checked by the tests
			MinVersion:         tls.VersionTLS13,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("no server certificate")
				}
				gw.mu.Lock()
				gw.seen = cs.PeerCertificates[0]
				gw.mu.Unlock()
				return nil
			},
		},
	}}
}

// PeerCertificate returns the server certificate of Client's last handshake.
func (gw *Gateway) PeerCertificate() *x509.Certificate {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	return gw.seen
}
