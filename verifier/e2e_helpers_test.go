package verifier

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/envelope"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
	"github.com/tdxl/tdxl/policy"
)

// pod is a gateway in front of a fake backend, quoting with a simulated TD whose RTMR3 holds the
// runtime events.
type pod struct {
	gw      *gatewaytest.Gateway
	tdx     *testtee.TDX
	backend *httptest.Server
	events  []attest.Event
	hits    atomic.Int64 // backend requests
}

var (
	modelDigest   = bytes.Repeat([]byte{0xab}, 32)
	backendDigest = bytes.Repeat([]byte{0xbc}, 32)
	configDigest  = bytes.Repeat([]byte{0xcd}, 32)
)

type podOptions struct {
	tdx        testtee.TDXOptions
	issuer     func(*testtee.TDX) attest.Issuer // wraps the TD's issuer (tampering)
	notExtend  bool                             // claim Extended but never extend RTMR3
	unattested bool
}

func startPod(t *testing.T, o podOptions) *pod {
	t.Helper()
	p := &pod{}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"ready"}`) })
	mux.HandleFunc("/images/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		fmt.Fprintf(w, "\x89PNG image %s", r.URL.Path)
	})
	mux.HandleFunc("POST /api/text2image", func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Prompt string `json:"prompt"`
		}
		json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		url := r.Header.Get("X-Forwarded-Proto") + "://" + r.Header.Get("X-Forwarded-Host") + "/images/x/0_0.png"
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "status": "success", "output": []map[string]any{{"url": url}}, "prompt": req.Prompt})
	})
	p.backend = httptest.NewServer(mux)
	t.Cleanup(p.backend.Close)
	if o.tdx.Seed == nil {
		o.tdx.Seed = []byte(t.Name())
	}
	var err error
	if p.tdx, err = testtee.NewTDX(o.tdx); err != nil {
		t.Fatal(err)
	}
	p.events = []attest.Event{
		attest.NewEvent(0, attest.EventModel, modelDigest, "stabilityai/sdxl-turbo"),
		attest.NewEvent(1, attest.EventBackendBinary, backendDigest, "tdxl-backend"),
		attest.NewEvent(2, attest.EventConfig, configDigest, "config"),
	}
	if !o.notExtend {
		for _, e := range p.events {
			var d [48]byte
			copy(d[:], e.Digest)
			if err := p.tdx.Extend(3, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	var iss attest.Issuer = p.tdx
	if o.issuer != nil {
		iss = o.issuer(p.tdx)
	}
	if o.unattested {
		iss = noneIssuer{}
	}
	p.gw = gatewaytest.Start(t, gatewaytest.Options{Backend: p.backend.URL, Issuer: iss,
		Runtime: gateway.Runtime{Events: p.events, Extended: !o.unattested}})
	return p
}

// policyFor returns a policy accepting exactly this pod (plus mods applied to the YAML).
func (p *pod) policyFor(t *testing.T, mods ...func(string) string) *policy.Policy {
	t.Helper()
	b := p.tdx.Body([64]byte{})
	h := hex.EncodeToString
	y := fmt.Sprintf(`apiVersion: tdxl/v1
name: test
tees: [tdx]
tdx:
  mrtd: [%s]
  rtmr0: [%s]
  rtmr1: [%s]
  rtmr2: [%s]
  mrseam: [%s]
  xfam: {value: "%s", mask: "ffe7ffffffffffff"}
  tdAttributes: {value: "%s"}
  tcb:
    acceptedStatuses: [UpToDate]
    maxCollateralAge: 7d
runtime:
  models: ["stabilityai/sdxl-turbo@sha256:%s"]
  backends: ["tdxl-backend@%s"]
  configs: ["%s"]
freshness:
  maxEvidenceAge: 5m
`, h(b.MrTd), h(b.Rtmrs[0]), h(b.Rtmrs[1]), h(b.Rtmrs[2]), h(b.MrSeam), h(b.Xfam), h(b.TdAttributes),
		h(modelDigest), h(backendDigest), h(configDigest))
	for _, m := range mods {
		y = m(y)
	}
	pol, err := policy.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return pol
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func (p *pod) roots(t *testing.T) *Roots {
	r := DefaultRoots()
	if err := r.AddPEM(p.tdx.RootPEM(), "simulated-root.pem"); err != nil {
		t.Fatal(err)
	}
	return r
}

func (p *pod) opts(t *testing.T) OnlineOptions {
	return OnlineOptions{Roots: p.roots(t), Getter: p.tdx.Getter(), Timeout: 10 * time.Second}
}

func (p *pod) connect(t *testing.T, pol *policy.Policy, o OnlineOptions) (*Session, error) {
	t.Helper()
	return Connect(context.Background(), p.gw.URL, pol, o)
}

// noneIssuer is the explicit unattested mode.
type noneIssuer struct{}

func (noneIssuer) TEE() attest.TEE { return attest.TEENone }
func (noneIssuer) Issue(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEENone, Unattested: true, Time: time.Now().UTC()}, nil
}

// tamperIssuer flips one byte of the quote body (in MRTD) after signing.
type tamperIssuer struct{ attest.Issuer }

func (ti tamperIssuer) Issue(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	ev, err := ti.Issuer.Issue(ctx, rd)
	if err == nil {
		ev.Quote[0x30+0x88] ^= 1
	}
	return ev, err
}

// selfSigned makes a TLS certificate for 127.0.0.1 with a fresh key.
func selfSigned(t *testing.T) (tls.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mitm"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, k
}

// evidenceServer serves a fixed evidence message (or a function of the request) over TLS with cert.
func evidenceServer(t *testing.T, cert tls.Certificate, serve func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(serve))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// fetchRaw gets the evidence message for nonce straight from the pod (what a MITM proxy forwards).
func (p *pod) fetchRaw(t *testing.T, nonce string) []byte {
	t.Helper()
	resp, err := p.gw.Client().Get(p.gw.URL + EvidencePath + "?nonce=" + nonce)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func spkiHash(c *x509.Certificate) [32]byte { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

var _ = envelope.MediaType

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tlsConfigFor(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}}
}
