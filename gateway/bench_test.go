package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
)

// keepAliveClient reuses connections so that benchmarks time the gateway,
// not TLS handshakes.
func keepAliveClient(gw *gatewaytest.Gateway) *http.Client {
	c := gw.Client()
	c.Transport.(*http.Transport).DisableKeepAlives = false
	return c
}

func benchGet(b *testing.B, c *http.Client, url string) {
	b.Helper()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkEvidence: cached evidence (no quote) against a fresh simulated
// TDX quote per request (ECDSA-signed quote v4 + COSE signature).
func BenchmarkEvidence(b *testing.B) {
	td, err := testtee.NewTDX(testtee.TDXOptions{Seed: []byte("bench")})
	if err != nil {
		b.Fatal(err)
	}
	be := newFakeBackendTB(b)
	gw := gatewaytest.Start(b, gatewaytest.Options{Backend: be.URL, Issuer: td.Issuer()})
	c := keepAliveClient(gw)
	b.Run("cached", func(b *testing.B) { benchGet(b, c, gw.URL+gateway.EvidencePath) })
	b.Run("nonce", func(b *testing.B) {
		benchGet(b, c, gw.URL+gateway.EvidencePath+"?nonce="+strings.Repeat("ab", 32))
	})
}

// BenchmarkProxy: a small request through the gateway, and a generation
// with two URL images whose receipt makes the gateway fetch and hash them.
func BenchmarkProxy(b *testing.B) {
	be := newFakeBackendTB(b)
	gw := gatewaytest.Start(b, gatewaytest.Options{Backend: be.URL, Issuer: &quoteIssuer{tee: "tdx"}})
	c := keepAliveClient(gw)
	b.Run("direct-backend", func(b *testing.B) { benchGet(b, http.DefaultClient, be.URL+"/readyz") })
	b.Run("through-gateway", func(b *testing.B) { benchGet(b, c, gw.URL+"/readyz") })
	b.Run("generate-with-receipt", func(b *testing.B) {
		for b.Loop() {
			resp, err := c.Post(gw.URL+"/api/text2image", "application/json", strings.NewReader(`{"prompt":"p","number":2}`))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Tdxl-Receipt") == "" {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
