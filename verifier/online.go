package verifier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway/envelope"
	"github.com/tdxl/tdxl/policy"
)

// EvidencePath is the gateway's evidence endpoint.
const EvidencePath = "/.well-known/tdxl/attestation"

// NonceSize is the size of the nonce the verifier sends.
const NonceSize = 32

// OnlineOptions configure Connect and Verify.
type OnlineOptions struct {
	// Roots are the trust anchors. Nil: DefaultRoots().
	Roots *Roots
	// Getter supplies TDX collateral. Nil: Intel PCS over HTTPS (see NewCollateralGetter).
	// Collateral embedded in the evidence is used when this getter fails.
	Getter Getter
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// AllowUnattested accepts an unattested server even if the policy does not (CLI
	// --allow-unattested). A warning is recorded either way.
	AllowUnattested bool
	// Timeout bounds the connection and evidence fetch. Zero: 30s.
	Timeout time.Duration
	// Logger receives debug logs. Nil: discard.
	Logger *slog.Logger
	// dialContext overrides the TCP dialer (tests).
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Session is a verified (or refused) connection target.
type Session struct {
	// Report lists every factor.
	Report *Report
	// Target is the normalised https URL.
	Target *url.URL
	// Certificate is the server's leaf certificate; its key is the pinned one.
	Certificate *x509.Certificate
	// SPKISHA256 is SHA-256 of the pinned key's SubjectPublicKeyInfo.
	SPKISHA256 [32]byte
	// Evidence is the decoded evidence (nil if the COSE check failed).
	Evidence *attest.Evidence
	// Bundle holds everything used, for offline re-verification (SaveBundle).
	Bundle *Bundle

	opts OnlineOptions
}

// NormalizeTarget turns "host:port" or "https://host:port/..." into an https URL with no path.
func NormalizeTarget(target string) (*url.URL, error) {
	if !strings.Contains(target, "://") {
		target = "https://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("bad target %q: %w", target, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("bad target %q: scheme must be https (the verifier pins the TLS key)", target)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bad target %q: no host", target)
	}
	return &url.URL{Scheme: "https", Host: u.Host}, nil
}

// Verify connects to target, fetches fresh evidence over that connection and verifies it
// against p. See Connect.
func Verify(ctx context.Context, target string, p *policy.Policy, o OnlineOptions) (*Report, error) {
	s, err := Connect(ctx, target, p, o)
	if s == nil {
		return nil, err
	}
	return s.Report, err
}

// Connect makes a TLS connection to target trusting no CA, takes the server key, fetches evidence
// with a fresh nonce over that same connection and checks, in order: the COSE signature by the
// certificate's key; the nonce; the quote's chain, collateral and TCB; the policy; REPORTDATA ==
// attest.ReportData(SPKI, nonce); the event-log replay into RTMR3; the runtime digests. The
// Session is returned even when verification fails (with its Report); Client works only on a
// verified session.
func Connect(ctx context.Context, target string, p *policy.Policy, o OnlineOptions) (*Session, error) {
	if p == nil {
		return nil, errors.New("verifier: no policy")
	}
	u, err := NormalizeTarget(target)
	if err != nil {
		return nil, err
	}
	if o.Roots == nil {
		o.Roots = DefaultRoots()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Getter == nil {
		o.Getter = NewCollateralGetter(CollateralOptions{})
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Target: u.String()}
	s := &Session{Report: rep, Target: u, opts: o}
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("making nonce: %w", err)
	}
	cert, msg, err := fetchEvidence(ctx, u, nonce, o)
	now := o.Now()
	e := &env{roots: o.Roots, now: now, pol: p, rec: newRecorder(rep, p), collateral: map[string]response{}}
	rep.Time, rep.Policy = now.UTC(), p.Where("")
	if err != nil {
		err = e.rec.fail(&FactorError{Factor: "connect", Reason: ErrNetwork, Err: err, Hint: "is the gateway running and reachable at " + u.Host + "?"}, "")
		rep.finish(err)
		return s, err
	}
	s.Certificate = cert
	s.SPKISHA256 = sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	s.Bundle = &Bundle{Version: BundleVersion, Target: u.String(), Time: now.UTC(), Certificate: cert.Raw, EvidenceMessage: msg,
		Nonce: nonce, PolicyName: p.Where(""), Roots: o.Roots.addedPEM()}
	if src, err := policySource(p); err == nil {
		s.Bundle.Policy = src
	}
	ev, err := envelope.OpenEvidence(msg, cert.PublicKey)
	if err != nil {
		reason := ErrCOSESignature
		if errors.Is(err, envelope.ErrMalformed) || errors.Is(err, attest.ErrMalformed) || errors.Is(err, attest.ErrUnsupportedVersion) {
			reason = ErrEvidenceMalformed
		}
		err = e.rec.fail(&FactorError{Factor: "evidence.signature", Reason: reason, Err: err,
			Hint: "the evidence is not signed by the key of the TLS connection: a proxy or another server answered"}, "")
		rep.finish(err)
		s.Bundle.record(rep, e.collateral)
		return s, err
	}
	e.rec.pass("evidence.signature", "", "COSE_Sign1 by the TLS key", "", "SPKI sha256 "+hexs(s.SPKISHA256[:]))
	s.Evidence = ev
	e.getter = withFallback(o.Getter, ev.Collateral)
	err = checkEvidence(ctx, e, ev, cert.RawSubjectPublicKeyInfo, nonce, o.AllowUnattested)
	rep.finish(err)
	s.Bundle.record(rep, e.collateral)
	return s, err
}

// fetchEvidence dials target once, records the leaf certificate, and GETs the evidence over that
// same TLS connection.
func fetchEvidence(ctx context.Context, u *url.URL, nonce []byte, o OnlineOptions) (*x509.Certificate, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	host := u.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "443")
	}
	dial := o.dialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting: %w", err)
	}
	sni := u.Hostname()
	if net.ParseIP(sni) != nil {
		sni = ""
	}
	conn := tls.Client(raw, &tls.Config{
		ServerName: sni, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"},
		// No CA is trusted: the attestation, checked below, authenticates the key.
		InsecureSkipVerify: true, //nolint:gosec // the key is authenticated by the evidence, then pinned
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	state := conn.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		conn.Close()
		return nil, nil, errors.New("server sent no certificate")
	}
	cert := state.PeerCertificates[0]
	used := false
	tr := &http.Transport{
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, errors.New("evidence must come over the first connection")
			}
			used = true
			return conn, nil
		},
		MaxIdleConns: 1, ResponseHeaderTimeout: o.Timeout,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+EvidencePath+"?nonce="+hex.EncodeToString(nonce), nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	req.Header.Set("Accept", envelope.MediaType)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("fetching evidence: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, envelope.MaxMessageSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading evidence: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("evidence endpoint answered %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	if len(body) > envelope.MaxMessageSize {
		return nil, nil, fmt.Errorf("evidence larger than %d bytes", envelope.MaxMessageSize)
	}
	return cert, body, nil
}

// withFallback answers from g, and from the evidence's embedded collateral when g fails or is nil.
func withFallback(g Getter, embedded []attest.Collateral) Getter {
	m := mapGetter{}
	for _, c := range embedded {
		m[c.URL] = response{c.Header, c.Body}
	}
	if g == nil {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	if len(m) == 0 {
		return g
	}
	return chainGetter{g, m}
}
