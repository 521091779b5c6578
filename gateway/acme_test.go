package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway/envelope"
)

// countingIssuer is a stand-in TEE whose quote is the REPORTDATA itself.
type countingIssuer struct{ n atomic.Int64 }

func (c *countingIssuer) TEE() attest.TEE { return attest.TEETDX }
func (c *countingIssuer) Issue(_ context.Context, rd [64]byte) (*attest.Evidence, error) {
	c.n.Add(1)
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEETDX, Quote: rd[:], Time: time.Now()}, nil
}

// acmeTestDomain is the name the test certificate is issued for; the test's
// own DNS server resolves it to 127.0.0.1 (and has no AAAA record), so the
// test does not depend on how this machine resolves "localhost".
const acmeTestDomain = "gateway.tdxl.test"

// startDNS serves A 127.0.0.1 for acmeTestDomain over TCP on loopback (the
// transport Pebble's custom resolver uses) and returns its address.
func startDNS(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA && strings.EqualFold(qq.Name, acmeTestDomain+".") {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// startPebble runs Let's Encrypt's Pebble ACME CA in-process on loopback.
// Its validation authority really connects, for TLS-ALPN-01, to tlsPort on
// the address the test DNS server gives for the identifier (no
// PEBBLE_VA_ALWAYS_VALID): the gateway's own listener must answer the
// challenge. It returns the directory URL, a pool for Pebble's HTTPS
// endpoint and the issuing root.
func startPebble(t *testing.T, tlsPort int) (string, *x509.CertPool, *x509.CertPool) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	pca := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: 30}})
	pva := va.New(logger, 1 /* no HTTP-01 listener */, tlsPort, false, startDNS(t), store)
	pwfe := wfe.New(logger, store, pva, pca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(pwfe.Handler())
	t.Cleanup(srv.Close)
	acmePool := x509.NewCertPool()
	acmePool.AddCert(srv.Certificate())
	roots := x509.NewCertPool()
	roots.AddCert(pca.GetRootCert(0).Cert)
	return srv.URL + wfe.DirectoryPath, acmePool, roots
}

// TestACMEWithPebbleQuotesTheIssuedKeyAndRequotesOnRenewal: certmagic gets a
// certificate from an in-process Pebble (TLS-ALPN-01 answered on the
// gateway's listener), the evidence binds that certificate's key, and the
// renewal certmagic's maintenance makes (new key) is quoted afresh and
// served with new evidence.
func TestACMEWithPebbleQuotesTheIssuedKeyAndRequotesOnRenewal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	dir, acmePool, roots := startPebble(t, port)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)

	iss := &countingIssuer{}
	g, err := New(Config{
		Listener: ln, Backend: backend.URL, Issuer: iss, TLS: TLSACME,
		ACME: ACMEConfig{CA: dir, TrustedRoots: acmePool, Domains: []string{acmeTestDomain}, Email: "ops@example.com",
			// 30 s certificates renewed when under 90 % of the lifetime
			// remains: certmagic's own maintenance renews after ~3 s.
			RenewalWindowRatio: 0.9, RenewCheckInterval: 250 * time.Millisecond},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		NonceRate: 1000, NonceBurst: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 60*time.Second, g.Ready, done)

	// A client trusting only Pebble's root verifies the chain for the domain.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: acmeTestDomain, MinVersion: tls.VersionTLS13}}}
	url := "https://" + ln.Addr().String() + EvidencePath + "?nonce=" + "00112233445566778899aabbccddeeff"
	first := fetchBound(t, client, url)

	quotes := iss.n.Load()
	// The renewal brings a new key; the gateway quotes it (cached evidence)
	// before or when it is first served.
	var second *x509.Certificate
	deadline := time.Now().Add(30 * time.Second)
	for {
		second = fetchBound(t, client, url)
		if !bytes.Equal(second.RawSubjectPublicKeyInfo, first.RawSubjectPublicKeyInfo) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("renewed certificate never served")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, func() bool {
		_, ok := g.ev.lookup(certID(sha256Sum(second.Raw)))
		return ok
	}, done)
	// Two nonce-less quotes at least: the first certificate and its renewal.
	if n := counterValue(t, g, "tdxl_gateway_quotes_total", "cached", "ok"); n < 2 {
		t.Fatalf("renewal did not re-quote: %v cached quotes", n)
	}
	if iss.n.Load() <= quotes {
		t.Fatal("no quote after the renewal")
	}
}

// fetchBound gets evidence over one verified TLS connection and checks it
// binds that connection's certificate (and the nonce in url).
func fetchBound(t *testing.T, c *http.Client, url string) *x509.Certificate {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("evidence: %d %s", resp.StatusCode, body)
	}
	cert := resp.TLS.PeerCertificates[0]
	ev, err := envelope.OpenEvidence(body, cert.PublicKey)
	if err != nil {
		t.Fatalf("evidence not signed by the served ACME certificate's key: %v", err)
	}
	want := attest.ReportData(cert.RawSubjectPublicKeyInfo, ev.Nonce)
	if !bytes.Equal(ev.Quote, want[:]) || len(ev.Nonce) != 16 {
		t.Fatal("REPORTDATA does not bind the ACME certificate's key and the nonce")
	}
	return cert
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("gateway stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", d)
		}
	}
}

func sha256Sum(b []byte) [32]byte { return idOf(&tls.Certificate{Certificate: [][]byte{b}}) }

// counterValue reads a counter of the gateway's registry by label values.
func counterValue(t *testing.T, g *Gateway, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
