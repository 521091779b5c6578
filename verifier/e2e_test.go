package verifier

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/gateway/envelope"
	"github.com/tdxl/tdxl/policy"
)

func TestE2EAcceptsMatchingPod(t *testing.T) {
	p := startPod(t, podOptions{})
	pol := p.policyFor(t)
	s, err := p.connect(t, pol, p.opts(t))
	if err != nil {
		t.Fatalf("matching pod refused: %v", err)
	}
	r := s.Report
	if r.Verdict != VerdictVerified || !r.Attested || r.TCBStatus != "UpToDate" || !strings.Contains(r.Root, "NOT Intel") {
		t.Fatalf("report: %+v", r)
	}
	for _, want := range []string{"evidence.signature", "tdx.pck-chain", "tdx.quote-signature", "tdx.tcb-info", "tdx.revocation", "tdx.tcb-status",
		"tdx.library-check", "tdx.mrtd", "tdx.rtmr0", "tdx.xfam", "binding.reportdata", "runtime.rtmr3", "runtime.model", "freshness.nonce"} {
		found := false
		for _, f := range r.Factors {
			if f.Name == want {
				found = f.Status == Pass
			}
		}
		if !found {
			t.Errorf("factor %s did not pass", want)
		}
	}
	if len(r.Runtime) != 3 || !r.Runtime[0].Bound {
		t.Errorf("runtime claims %+v", r.Runtime)
	}
	// The pinned client talks to the verified pod.
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post(p.gw.URL+"/api/text2image", "application/json", strings.NewReader(`{"prompt":"a panda"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("a panda")) {
		t.Fatalf("pinned POST: %d %s", resp.StatusCode, body)
	}
}

// Each refusal carries its own typed error.
func TestE2ERefusals(t *testing.T) {
	zero48 := strings.Repeat("00", 48)
	cases := []struct {
		name   string
		pod    podOptions
		mod    func(string) string
		opts   func(*OnlineOptions)
		reason error
		factor string
	}{
		{name: "wrong MRTD", mod: func(s string) string { return replaceList(s, "mrtd", zero48) }, reason: ErrMeasurement, factor: "tdx.mrtd"},
		{name: "wrong RTMR0", mod: func(s string) string { return replaceList(s, "rtmr0", zero48) }, reason: ErrMeasurement, factor: "tdx.rtmr0"},
		{name: "wrong RTMR1", mod: func(s string) string { return replaceList(s, "rtmr1", zero48) }, reason: ErrMeasurement, factor: "tdx.rtmr1"},
		{name: "wrong RTMR2", mod: func(s string) string { return replaceList(s, "rtmr2", zero48) }, reason: ErrMeasurement, factor: "tdx.rtmr2"},
		{name: "debug TD", pod: podOptions{tdx: testtee.TDXOptions{Debug: true}}, mod: func(s string) string {
			return strings.Replace(s, "  tdAttributes: {value: \"0100001000000000\"}\n", "", 1)
		}, reason: ErrDebug, factor: "tdx.debug"},
		{name: "XFAM outside mask", pod: podOptions{tdx: testtee.TDXOptions{XFAM: []byte{0xe7, 0x02, 0x06, 0, 0, 0, 0, 0}}},
			mod: replace(`xfam: {value: "e702060000000000"`, `xfam: {value: "e702020000000000"`), reason: ErrXFAM, factor: "tdx.xfam"},
		{name: "TCB OutOfDate", pod: podOptions{tdx: testtee.TDXOptions{TCBStatus: "OutOfDate", AdvisoryIDs: []string{"INTEL-SA-00837"}}}, reason: ErrTCBStatus, factor: "tdx.tcb-status"},
		{name: "revoked PCK", pod: podOptions{tdx: testtee.TDXOptions{PCKRevoked: true}}, reason: ErrRevoked, factor: "tdx.revocation"},
		{name: "expired collateral", pod: podOptions{tdx: testtee.TDXOptions{CollateralIssued: time.Now().Add(-40 * 24 * time.Hour),
			CollateralNextUpdate: time.Now().Add(-10 * 24 * time.Hour)}}, reason: ErrCollateralExpired, factor: "tdx.tcb-info"},
		{name: "collateral older than policy", pod: podOptions{tdx: testtee.TDXOptions{CollateralIssued: time.Now().Add(-9 * 24 * time.Hour)}},
			reason: ErrCollateralTooOld, factor: "tdx.tcb-info"},
		{name: "collateral issued in the future", pod: podOptions{tdx: testtee.TDXOptions{CollateralIssued: time.Now().Add(48 * time.Hour)}},
			reason: ErrCollateralNotYetValid, factor: "tdx.tcb-info"},
		{name: "tampered quote byte", pod: podOptions{issuer: func(d *testtee.TDX) attest.Issuer { return tamperIssuer{d} }},
			reason: ErrQuoteSignature, factor: "tdx.quote-signature"},
		{name: "event log does not replay to RTMR3", pod: podOptions{notExtend: true}, mod: replace("rtmr2: [", "rtmr2: ["),
			reason: ErrEventLog, factor: "runtime.rtmr3"},
		{name: "model digest not in policy", mod: replace("sdxl-turbo@sha256:ab", "sdxl-turbo@sha256:ac"), reason: ErrRuntimeDigest, factor: "runtime.model"},
		{name: "unattested without opt-in", pod: podOptions{unattested: true}, reason: ErrUnattested, factor: "tee"},
		{name: "simulated root without trust root", opts: func(o *OnlineOptions) { o.Roots = DefaultRoots() }, reason: ErrUntrustedRoot, factor: "tdx.pck-chain"},
		{name: "no collateral", opts: func(o *OnlineOptions) { o.Getter = mapGetter{} }, reason: ErrCollateralUnavailable, factor: "tdx.collateral"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startPod(t, c.pod)
			var mods []func(string) string
			if c.mod != nil {
				mods = append(mods, c.mod)
			}
			pol := p.policyFor(t, mods...)
			o := p.opts(t)
			if c.opts != nil {
				c.opts(&o)
			}
			s, err := p.connect(t, pol, o)
			if !errors.Is(err, c.reason) {
				t.Fatalf("want %v, got %v", c.reason, err)
			}
			var fe *FactorError
			if !errors.As(err, &fe) || fe.Factor != c.factor {
				t.Fatalf("want factor %s, got %#v", c.factor, err)
			}
			if s.Report.Verdict == VerdictVerified {
				t.Fatal("verdict verified on error")
			}
			if _, err := s.Client(); !errors.Is(err, ErrNotVerified) {
				t.Fatal("a refused session must not give a client")
			}
			if fe.Hint == "" {
				t.Error("no hint")
			}
		})
	}
}

// replaceList replaces the allow-list of key with one value.
func replaceList(y, key, val string) string {
	i := strings.Index(y, "  "+key+": [")
	j := strings.Index(y[i:], "]")
	return y[:i] + "  " + key + ": [" + val + y[i+j:]
}

func TestE2EOutOfDateAcceptedOnlyWhenAllowed(t *testing.T) {
	p := startPod(t, podOptions{tdx: testtee.TDXOptions{TCBStatus: "OutOfDate", AdvisoryIDs: []string{"INTEL-SA-00837"}}})
	pol := p.policyFor(t, replace("acceptedStatuses: [UpToDate]", "acceptedStatuses: [UpToDate, OutOfDate]\n    allowedAdvisories: [INTEL-SA-00837]"))
	s, err := p.connect(t, pol, p.opts(t))
	if err != nil || s.Report.TCBStatus != "OutOfDate" {
		t.Fatalf("OutOfDate allowed by policy: %v %+v", err, s.Report)
	}
	pol = p.policyFor(t, replace("acceptedStatuses: [UpToDate]", "acceptedStatuses: [UpToDate, OutOfDate]\n    allowedAdvisories: [INTEL-SA-00001]"))
	if _, err := p.connect(t, pol, p.opts(t)); !errors.Is(err, ErrAdvisory) {
		t.Fatalf("advisory not allowed: %v", err)
	}
}

func TestE2EUnattestedOptIn(t *testing.T) {
	p := startPod(t, podOptions{unattested: true})
	s, err := p.connect(t, p.policyFor(t), OnlineOptions{AllowUnattested: true, Getter: mapGetter{}})
	if err != nil || s.Report.Attested || len(s.Report.Warnings) == 0 {
		t.Fatalf("opt-in: %v %+v", err, s.Report)
	}
	pol, _ := policy.Parse("dev.yaml", []byte("apiVersion: tdxl/v1\nallowUnattested: true\n"))
	if s, err = p.connect(t, pol, OnlineOptions{Getter: mapGetter{}}); err != nil || s.Report.Attested {
		t.Fatalf("policy opt-in: %v", err)
	}
}

// A TLS proxy with its own certificate forwarding the pod's evidence (fetched with the client's
// nonce): as-is it fails the COSE check; re-signed with the proxy's key it fails the binding.
func TestE2EManInTheMiddle(t *testing.T) {
	p := startPod(t, podOptions{})
	pol := p.policyFor(t)
	cert, key := selfSigned(t)
	var resign atomic.Bool
	proxy := evidenceServer(t, cert, func(w http.ResponseWriter, r *http.Request) {
		msg := p.fetchRaw(t, r.URL.Query().Get("nonce"))
		if resign.Load() {
			payload, err := envelope.Payload(msg, envelope.ContentTypeEvidence)
			if err != nil {
				t.Error(err)
			}
			ev, err := attest.Unmarshal(payload)
			if err != nil {
				t.Error(err)
			}
			h := spkiHash(mustParse(t, cert.Certificate[0]))
			ev.SPKISHA256 = h[:]
			if msg, err = envelope.SignEvidence(key, ev); err != nil {
				t.Error(err)
			}
		}
		w.Write(msg)
	})
	_, err := Connect(context.Background(), proxy.URL, pol, p.opts(t))
	if !errors.Is(err, ErrCOSESignature) {
		t.Fatalf("forwarded evidence: want COSE error, got %v", err)
	}
	resign.Store(true)
	_, err = Connect(context.Background(), proxy.URL, pol, p.opts(t))
	if !errors.Is(err, ErrBinding) {
		t.Fatalf("re-signed evidence: want binding error, got %v", err)
	}
}

// A server replaying evidence made for an earlier nonce (same key) is refused.
func TestE2EReplayedNonce(t *testing.T) {
	p := startPod(t, podOptions{})
	pol := p.policyFor(t)
	cert, key := selfSigned(t)
	spki := mustParse(t, cert.Certificate[0]).RawSubjectPublicKeyInfo
	old := bytes.Repeat([]byte{7}, 32)
	ev, err := attest.IssueBound(context.Background(), p.tdx, spki, old)
	if err != nil {
		t.Fatal(err)
	}
	ev.EventLog, ev.RTMRExtended = p.events, true
	msg, err := envelope.SignEvidence(key, ev)
	if err != nil {
		t.Fatal(err)
	}
	srv := evidenceServer(t, cert, func(w http.ResponseWriter, r *http.Request) { w.Write(msg) })
	_, err = Connect(context.Background(), srv.URL, pol, p.opts(t))
	if !errors.Is(err, ErrNonce) {
		t.Fatalf("want nonce error, got %v", err)
	}
	// The same server answering with the right nonce is accepted: the check is the nonce only.
	fresh := evidenceServer(t, cert, func(w http.ResponseWriter, r *http.Request) {
		n, _ := hex.DecodeString(r.URL.Query().Get("nonce"))
		ev, _ := attest.IssueBound(r.Context(), p.tdx, spki, n)
		ev.EventLog, ev.RTMRExtended = p.events, true
		m, _ := envelope.SignEvidence(key, ev)
		w.Write(m)
	})
	if _, err := Connect(context.Background(), fresh.URL, pol, p.opts(t)); err != nil {
		t.Fatalf("fresh evidence from the same key refused: %v", err)
	}
}

// The pinned client refuses another server key in the handshake: the body never reaches it, and
// the refusal is not retried.
func TestE2EPinnedClientRefusesOtherKey(t *testing.T) {
	p := startPod(t, podOptions{})
	s, err := p.connect(t, p.policyFor(t), p.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Client()
	var received, handshakes atomic.Int64
	cert, _ := selfSigned(t)
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		received.Add(1)
	}))
	other.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	other.Config.ErrorLog = log.New(io.Discard, "", 0)
	other.StartTLS()
	defer other.Close()
	_, err = c.Post(other.URL+"/api/text2image", "application/json", strings.NewReader(`{"prompt":"secret prompt"}`))
	if !errors.Is(err, ErrPinned) {
		t.Fatalf("want pin error, got %v", err)
	}
	if received.Load() != 0 {
		t.Fatal("the other server received the request")
	}
	if handshakes.Load() != 1 {
		t.Fatalf("%d handshakes: a pin failure must not be retried", handshakes.Load())
	}
	// GETs are not retried on a pin failure either.
	if _, err := c.Get(other.URL + "/"); !errors.Is(err, ErrPinned) || handshakes.Load() != 2 {
		t.Fatalf("GET: %v, %d handshakes", err, handshakes.Load())
	}
}

func TestE2EBundleReverification(t *testing.T) {
	p := startPod(t, podOptions{})
	pol := p.policyFor(t)
	s, err := p.connect(t, pol, p.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pod.bundle.json")
	if err := s.Bundle.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Collateral) < 4 || b.Verdict != VerdictVerified {
		t.Fatalf("bundle: %d collateral responses, verdict %s", len(b.Collateral), b.Verdict)
	}
	rep, err := VerifyBundle(context.Background(), b, BundleOptions{Roots: p.roots(t)})
	if err != nil || rep.Verdict != VerdictVerified || !rep.Time.Equal(b.Time) {
		t.Fatalf("bundle re-verification: %v %+v", err, rep)
	}
	// The roots recorded in the bundle are not trusted on their own.
	if _, err := VerifyBundle(context.Background(), b, BundleOptions{}); !errors.Is(err, ErrUntrustedRoot) {
		t.Fatalf("bundle without trust root: %v", err)
	}
	// Later: the evidence is too old for the recorded policy, and under a policy without an age
	// limit the collateral has expired.
	later := b.Time.Add(60 * 24 * time.Hour)
	if _, err := VerifyBundle(context.Background(), b, BundleOptions{Roots: p.roots(t), Now: later}); !errors.Is(err, ErrStale) {
		t.Fatalf("bundle at a later time: %v", err)
	}
	noAge := p.policyFor(t, replace("  maxEvidenceAge: 5m\n", ""))
	if _, err := VerifyBundle(context.Background(), b, BundleOptions{Roots: p.roots(t), Now: later, Policy: noAge}); !errors.Is(err, ErrCollateralExpired) {
		t.Fatalf("bundle at a later time: %v", err)
	}
	// A tampered bundle fails the COSE check.
	b.EvidenceMessage[len(b.EvidenceMessage)-1] ^= 1
	if _, err := VerifyBundle(context.Background(), b, BundleOptions{Roots: p.roots(t)}); !errors.Is(err, ErrCOSESignature) {
		t.Fatalf("tampered bundle: %v", err)
	}
}

func TestE2ENetworkErrorIsUnavailable(t *testing.T) {
	pol, _ := policy.Parse("p.yaml", []byte("apiVersion: tdxl/v1\ntdx: {}\n"))
	_, err := Connect(context.Background(), "https://127.0.0.1:1", pol, OnlineOptions{Timeout: 2 * time.Second, Getter: mapGetter{}})
	if !errors.Is(err, ErrNetwork) || Class(err) != ErrUnavailable {
		t.Fatalf("want network error, got %v", err)
	}
}
