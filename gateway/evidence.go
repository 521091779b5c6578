package gateway

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway/envelope"
)

// EvidencePath is the evidence endpoint.
const EvidencePath = "/.well-known/tdxl/attestation"

// Nonce bounds of the evidence endpoint, in bytes (hex doubles them).
const (
	MinNonceLen = 16
	MaxNonceLen = attest.MaxNonceLen // 64
)

// Response headers of the evidence endpoint (informative; the signed
// payload is authoritative).
const (
	HeaderTEE        = "Tdxl-Tee"
	HeaderUnattested = "Tdxl-Unattested"
)

// cachedEvidence is the nonce-less evidence of one certificate.
type cachedEvidence struct {
	msg    []byte   // COSE_Sign1 bytes as served
	digest [32]byte // SHA-256(msg): what receipts name
	issued time.Time
}

// evidenceService issues and caches evidence for the gateway's certificates.
type evidenceService struct {
	issuer  attest.Issuer
	runtime func() Runtime
	version string
	timeout time.Duration
	sem     chan struct{}
	m       *metrics
	log     *slog.Logger

	mu       sync.Mutex
	cache    map[certID]*cachedEvidence
	order    []certID           // insertion order, for eviction
	inflight map[certID]*flight // single flight of cached quotes
}

// maxCachedCerts bounds the evidence cache: certificates that are no longer
// served drop out (a renewal keeps the previous one for a while, for clients
// that connected just before it).
const maxCachedCerts = 64

func newEvidenceService(cfg *Config, runtime func() Runtime, m *metrics) *evidenceService {
	return &evidenceService{
		issuer: cfg.Issuer, runtime: runtime, version: cfg.Version, timeout: cfg.QuoteTimeout,
		sem: make(chan struct{}, cfg.QuoteConcurrency), m: m, log: cfg.Logger,
		cache: map[certID]*cachedEvidence{}, inflight: map[certID]*flight{},
	}
}

// issue quotes spki with nonce and signs the evidence with key.
func (s *evidenceService) issue(ctx context.Context, key crypto.Signer, nonce []byte) ([]byte, error) {
	kind := "cached"
	if len(nonce) > 0 {
		kind = "nonce"
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a quote slot: %w", context.Cause(ctx))
	}
	defer func() { <-s.sem }()
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, fmt.Errorf("quote took longer than %v", s.timeout))
	defer cancel()

	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("marshaling TLS public key: %w", err)
	}
	start := time.Now()
	ev, err := attest.IssueBound(ctx, s.issuer, spki, nonce)
	s.m.quoteLatency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.quotes.WithLabelValues(kind, "error").Inc()
		return nil, err
	}
	rt := s.runtime()
	ev.EventLog = rt.Events
	ev.RTMRExtended = rt.Extended && ev.TEE == attest.TEETDX
	ev.RTMRStatus = rt.Status
	ev.GatewayVersion = s.version
	msg, err := envelope.SignEvidence(key, ev)
	if err != nil {
		s.m.quotes.WithLabelValues(kind, "error").Inc()
		return nil, fmt.Errorf("signing evidence: %w", err)
	}
	s.m.quotes.WithLabelValues(kind, "ok").Inc()
	return msg, nil
}

// store records msg as the cached evidence of cert.
func (s *evidenceService) store(id certID, msg []byte) *cachedEvidence {
	ce := &cachedEvidence{msg: msg, digest: sha256.Sum256(msg), issued: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cache[id]; !ok {
		s.order = append(s.order, id)
	}
	s.cache[id] = ce
	for len(s.order) > maxCachedCerts {
		delete(s.cache, s.order[0])
		s.order = s.order[1:]
	}
	return ce
}

func (s *evidenceService) lookup(id certID) (*cachedEvidence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ce, ok := s.cache[id]
	return ce, ok
}

// cached returns the nonce-less evidence of cert, quoting it once if it is
// not cached yet: concurrent callers share one quote and its outcome.
func (s *evidenceService) cached(ctx context.Context, cert *tls.Certificate) (*cachedEvidence, error) {
	id := idOf(cert)
	s.mu.Lock()
	if ce, ok := s.cache[id]; ok {
		s.mu.Unlock()
		return ce, nil
	}
	f, busy := s.inflight[id]
	if !busy {
		f = &flight{done: make(chan struct{})}
		s.inflight[id] = f
		s.mu.Unlock()
		f.ce, f.err = s.quoteCert(ctx, id, cert)
		s.mu.Lock()
		delete(s.inflight, id)
		s.mu.Unlock()
		close(f.done)
		return f.ce, f.err
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.ce, f.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// flight is one cached-evidence quote in progress.
type flight struct {
	done chan struct{}
	ce   *cachedEvidence
	err  error
}

func (s *evidenceService) quoteCert(ctx context.Context, id certID, cert *tls.Certificate) (*cachedEvidence, error) {
	key, _, err := signerOf(cert)
	if err != nil {
		return nil, err
	}
	msg, err := s.issue(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	ce := s.store(id, msg)
	s.log.Info("quoted certificate", "spki_sha256", hex.EncodeToString(spkiHash(cert)), "tee", s.issuer.TEE())
	return ce, nil
}

func spkiHash(c *tls.Certificate) []byte {
	leaf, err := leafOf(c)
	if err != nil {
		return nil
	}
	h := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return h[:]
}

// errBadNonce is returned by parseNonce.
var errBadNonce = errors.New("bad nonce")

// parseNonce parses the nonce query parameter: absent → nil; otherwise hex
// of 16..64 bytes.
func parseNonce(r *http.Request) ([]byte, error) {
	vals, present := r.URL.Query()["nonce"]
	if !present {
		return nil, nil
	}
	if len(vals) != 1 {
		return nil, fmt.Errorf("%w: give exactly one nonce parameter", errBadNonce)
	}
	v := vals[0]
	if len(v)%2 != 0 {
		return nil, fmt.Errorf("%w: odd number of hex digits (%d)", errBadNonce, len(v))
	}
	if len(v)/2 < MinNonceLen || len(v)/2 > MaxNonceLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d bytes as hex", errBadNonce, len(v)/2, MinNonceLen, MaxNonceLen)
	}
	n, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex: %v", errBadNonce, err)
	}
	return n, nil
}

// serveEvidence answers GET /.well-known/tdxl/attestation[?nonce=HEX].
func (g *Gateway) serveEvidence(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	if g.cfg.Issuer.TEE() == attest.TEENone {
		g.log.Warn("serving UNATTESTED evidence (--tee=none): nothing here is vouched for by hardware",
			"remote_addr", r.RemoteAddr)
	}
	nonce, err := parseNonce(r)
	if err != nil {
		g.m.evidenceRequests.WithLabelValues("bad_nonce").Inc()
		writeError(w, http.StatusBadRequest, "bad_nonce", err.Error())
		return
	}
	if !g.ready.Load() {
		g.m.evidenceRequests.WithLabelValues("not_ready").Inc()
		writeError(w, http.StatusServiceUnavailable, "not_ready", "gateway is starting: "+g.notReadyReason())
		return
	}
	cert := g.servedCertificate(r)
	if cert == nil {
		g.m.evidenceRequests.WithLabelValues("error").Inc()
		writeError(w, http.StatusServiceUnavailable, "no_certificate", "no certificate for this connection")
		return
	}
	var msg []byte
	if nonce == nil {
		ce, err := g.ev.cached(r.Context(), cert)
		if err != nil {
			g.quoteFailed(w, r, err)
			return
		}
		msg = ce.msg
	} else {
		if ok, retry := g.limiter.allow(clientIP(r), time.Now()); !ok {
			g.m.evidenceRequests.WithLabelValues("rate_limited").Inc()
			w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds())+1))
			writeError(w, http.StatusTooManyRequests, "rate_limited", "too many fresh quotes from this address; retry later or omit the nonce for the cached evidence")
			return
		}
		key, _, err := signerOf(cert)
		if err != nil {
			g.quoteFailed(w, r, err)
			return
		}
		if msg, err = g.ev.issue(r.Context(), key, nonce); err != nil {
			g.quoteFailed(w, r, err)
			return
		}
	}
	g.m.evidenceRequests.WithLabelValues("ok").Inc()
	h := w.Header()
	h.Set("Content-Type", envelope.MediaType)
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderTEE, string(g.cfg.Issuer.TEE()))
	if g.cfg.Issuer.TEE() == attest.TEENone {
		h.Set(HeaderUnattested, "true")
	}
	h.Set("Content-Length", fmt.Sprint(len(msg)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(msg)
	}
}

func (g *Gateway) quoteFailed(w http.ResponseWriter, r *http.Request, err error) {
	g.m.evidenceRequests.WithLabelValues("error").Inc()
	g.log.Error("issuing evidence", "remote_addr", r.RemoteAddr, "error", err)
	if r.Context().Err() != nil {
		return // client gone
	}
	writeError(w, http.StatusServiceUnavailable, "quote_failed", "could not issue evidence: "+err.Error())
}
