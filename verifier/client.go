package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// ErrNotVerified is returned by Session.Client for a session whose verification failed.
var ErrNotVerified = errors.New("verifier: session not verified")

// PinnedTLSConfig returns a TLS configuration that accepts exactly the server key whose
// SHA-256(SubjectPublicKeyInfo) is spki, checked in the handshake (VerifyConnection), before any
// request byte is written. No CA is consulted: the key was authenticated by attestation.
func PinnedTLSConfig(spki [32]byte, serverName string) *tls.Config {
	return &tls.Config{
		ServerName:         serverName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // replaced by the SPKI pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &FactorError{Factor: "pin", Reason: ErrPinned, Actual: "no certificate"}
			}
			got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if !bytes.Equal(got[:], spki[:]) {
				return &FactorError{Factor: "pin", Reason: ErrPinned, Actual: hexs(got[:]), Expected: hexs(spki[:]),
					Hint: "the server's TLS key changed since it was verified (renewal, failover, or a man in the middle): verify again"}
			}
			return nil
		},
	}
}

// Client returns an *http.Client for the verified server: its TLS configuration refuses any key
// but the verified one (in the handshake), it retries idempotent requests on transient errors
// (go-retryablehttp), never retries pinning or attestation failures, and retries a POST only
// when the request cannot have reached the server (the TCP connection was refused).
func (s *Session) Client() (*http.Client, error) {
	if s == nil || s.Report == nil || s.Report.Verdict != VerdictVerified || s.Certificate == nil {
		return nil, ErrNotVerified
	}
	sni := s.Target.Hostname()
	if net.ParseIP(sni) != nil {
		sni = ""
	}
	return NewPinnedClient(s.SPKISHA256, sni, s.opts.dialContext), nil
}

type methodKey struct{}

// NewPinnedClient builds the pinned, retrying client (see Session.Client).
func NewPinnedClient(spki [32]byte, serverName string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:       PinnedTLSConfig(spki, serverName),
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute, // image generation can take minutes on CPU
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
	if dial != nil {
		tr.DialContext = dial
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: tr}
	rc.Logger = nil
	rc.RetryMax = 3
	rc.RetryWaitMin = 200 * time.Millisecond
	rc.RetryWaitMax = 3 * time.Second
	rc.CheckRetry = checkRetry
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &http.Client{Transport: methodTagger{&retryablehttp.RoundTripper{Client: rc}}}
}

// methodTagger puts the request method in the context, so CheckRetry (which sees only the
// context) can tell a POST from a GET.
type methodTagger struct{ next http.RoundTripper }

func (m methodTagger) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.WithContext(context.WithValue(r.Context(), methodKey{}, r.Method))
	return m.next.RoundTrip(r)
}

func idempotent(ctx context.Context) bool {
	switch ctx.Value(methodKey{}) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// checkRetry: never retry a pin/attestation failure; retry non-idempotent requests only when the
// connection was never made; otherwise go-retryablehttp's default policy.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return false, err
		}
		if !idempotent(ctx) {
			return notSent(err), err
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	if !idempotent(ctx) {
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// notSent reports whether err proves that no request byte reached the server: the TCP dial failed.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
