package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/tdxl/tdxl/attest"
)

// DefaultProxyTimeout bounds one proxied request: above tdxl-backend's default per-request timeout
// (30 minutes, queueing included) so that the backend's own JSON 504 reaches the client instead of
// the gateway cutting a generation the backend is still running.
const DefaultProxyTimeout = 31 * time.Minute

// TLSMode selects where the gateway's certificate comes from.
type TLSMode string

// TLS modes.
const (
	// TLSSelfSigned: a P-256 key generated in memory at start (it never
	// touches disk) and a self-signed certificate carrying the cached
	// evidence in the EvidenceExtensionOID extension. The default: clients
	// trust the attested key, not a CA. Rotated with a new key every
	// SelfSignedValidity·2/3.
	TLSSelfSigned TLSMode = "self-signed"
	// TLSACME: certificates from an ACME CA through certmagic (TLS-ALPN-01
	// on the gateway's own listener; HTTP-01 when ACMEHTTPPort is set).
	TLSACME TLSMode = "acme"
	// TLSFiles: a certificate and key read from files, re-read when they
	// change (checked every FilesReloadInterval).
	TLSFiles TLSMode = "files"
)

// Config configures a Gateway. The zero value of each field means the
// default written next to it; New validates the whole.
type Config struct {
	// Listen is the TCP address of the TLS front. Default ":8443".
	Listen string
	// Listener, when set, is used instead of Listen (tests, socket
	// activation). The gateway closes it on shutdown.
	Listener net.Listener
	// Backend is the backend's base URL: "http://host:port" (loopback in
	// attested mode) or "unix:/path/to/socket". Required.
	Backend string

	// Issuer produces the evidence (attest providers, or testtee). Required.
	Issuer attest.Issuer
	// Version is reported in Evidence.GatewayVersion. Default "dev".
	Version string

	// Runtime is the runtime event log the evidence carries when Measure
	// is nil: events and whether they were extended into RTMR3.
	Runtime Runtime
	// Measure, when set, is run by Run once the listener is up (so /healthz
	// answers while a large model is hashed) and before the gateway is
	// ready; its result replaces Runtime. See MeasureRuntime.
	Measure func(ctx context.Context) (Runtime, error)

	// TLS selects the certificate source. Default TLSSelfSigned.
	TLS TLSMode
	// SelfSignedNames are the DNS names / IPs put in the self-signed
	// certificate. Default: "localhost", 127.0.0.1, ::1 and the host name.
	SelfSignedNames []string
	// SelfSignedValidity is the lifetime of a self-signed certificate; a new
	// key and certificate (and a fresh quote) replace it after 2/3 of it.
	// Default 7 days.
	SelfSignedValidity time.Duration
	// ACME configures TLSACME.
	ACME ACMEConfig
	// CertFile and KeyFile are the PEM files of TLSFiles.
	CertFile, KeyFile string
	// FilesReloadInterval is how often TLSFiles checks the files for a
	// change. Default 30s.
	FilesReloadInterval time.Duration

	// MaxHeaderBytes bounds request headers. Default 16 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds proxied request bodies (413 beyond). Default 1 MiB,
	// the backend's own limit.
	MaxBodyBytes int64
	// MaxResponseBytes bounds a generation response the gateway buffers to
	// sign a receipt, and each image it fetches for it. Default 256 MiB.
	MaxResponseBytes int64
	// ReadHeaderTimeout, ReadTimeout, IdleTimeout: http.Server limits.
	// Defaults 10s, 60s, 120s.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// ProxyTimeout bounds one proxied request, generation included (the
	// server's WriteTimeout is ProxyTimeout+1m). Default DefaultProxyTimeout.
	ProxyTimeout time.Duration
	// ShutdownGrace bounds the graceful shutdown. Default 30s.
	ShutdownGrace time.Duration

	// QuoteTimeout bounds the issue of one quote. Default 30s.
	QuoteTimeout time.Duration
	// NonceRate and NonceBurst rate-limit fresh (nonce) quotes per client IP
	// (token bucket, per second). Defaults 1/s, burst 5.
	NonceRate  float64
	NonceBurst int
	// QuoteConcurrency bounds quotes in flight. Default 4.
	QuoteConcurrency int

	// Logger receives the gateway's logs. Default slog.Default().
	Logger *slog.Logger
}

// ACMEConfig configures certificates from an ACME CA (TLSACME).
type ACMEConfig struct {
	// CA is the ACME directory URL. Default Let's Encrypt production.
	CA string
	// Email is the ACME account contact. Optional.
	Email string
	// Domains are the names to obtain certificates for. Required.
	Domains []string
	// TrustedRoots verifies the ACME server's own HTTPS certificate (a
	// private CA, Pebble in tests). Default: the system roots.
	TrustedRoots *x509.CertPool
	// HTTPPort, when non-zero, enables HTTP-01 with a challenge listener on
	// this port (80 in production). TLS-ALPN-01 is always answered by the
	// gateway's own TLS listener (the CA connects to port 443 of the
	// domain, so the gateway must be reachable there).
	HTTPPort int
	// Storage holds the ACME account and certificate keys. Default: in
	// memory only (the keys never touch disk; the certificate is obtained
	// again on every start — mind the CA's rate limits).
	Storage certmagic.Storage
	// RenewalWindowRatio: renew when this fraction of the lifetime remains.
	// Default certmagic's (1/3).
	RenewalWindowRatio float64
	// RenewCheckInterval: how often certificates are checked for renewal.
	// Default certmagic's (10 min).
	RenewCheckInterval time.Duration
}

// Runtime is the runtime measurement state recorded at start.
type Runtime struct {
	// Events in the order they were extended.
	Events []attest.Event
	// Extended is true iff every event was extended into RTMR3.
	Extended bool
	// Status explains Extended (e.g. "not extended: no RTMR sysfs interface").
	Status string
}

// ModelDigest returns the measurement of the first "model" event, or nil.
func (r Runtime) ModelDigest() []byte {
	for _, e := range r.Events {
		if e.Type == attest.EventModel {
			return e.Measurement
		}
	}
	return nil
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("gateway: bad configuration")

func (c *Config) withDefaults() Config {
	d := *c
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if d.Listen == "" {
		d.Listen = ":8443"
	}
	if d.Version == "" {
		d.Version = "dev"
	}
	if d.TLS == "" {
		d.TLS = TLSSelfSigned
	}
	def(&d.SelfSignedValidity, 7*24*time.Hour)
	def(&d.FilesReloadInterval, 30*time.Second)
	def(&d.ReadHeaderTimeout, 10*time.Second)
	def(&d.ReadTimeout, 60*time.Second)
	def(&d.IdleTimeout, 120*time.Second)
	def(&d.ProxyTimeout, DefaultProxyTimeout)
	def(&d.ShutdownGrace, 30*time.Second)
	def(&d.QuoteTimeout, 30*time.Second)
	if d.MaxHeaderBytes == 0 {
		d.MaxHeaderBytes = 16 << 10
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.MaxResponseBytes == 0 {
		d.MaxResponseBytes = 256 << 20
	}
	if d.NonceRate == 0 {
		d.NonceRate = 1
	}
	if d.NonceBurst == 0 {
		d.NonceBurst = 5
	}
	if d.QuoteConcurrency == 0 {
		d.QuoteConcurrency = 4
	}
	if d.ACME.CA == "" {
		d.ACME.CA = certmagic.LetsEncryptProductionCA
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}

func (c *Config) validate() error {
	if c.Issuer == nil {
		return fmt.Errorf("%w: no evidence issuer (--tee)", ErrConfig)
	}
	return c.check()
}

// CheckSettings validates everything but Issuer (defaults applied), so a
// command can report a bad flag before it opens the TEE. Errors wrap
// ErrConfig.
func (c Config) CheckSettings() error {
	d := c.withDefaults()
	return d.check()
}

func (c *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if _, err := parseBackend(c.Backend); err != nil {
		return err
	}
	switch c.TLS {
	case TLSSelfSigned:
		if c.SelfSignedValidity < time.Second {
			return bad("self-signed validity %v is under a second", c.SelfSignedValidity)
		}
	case TLSACME:
		if len(c.ACME.Domains) == 0 {
			return bad("--tls=acme needs --acme-domains")
		}
		if u, err := url.Parse(c.ACME.CA); err != nil || u.Scheme != "https" {
			return bad("--acme-ca %q is not an https URL", c.ACME.CA)
		}
	case TLSFiles:
		if c.CertFile == "" || c.KeyFile == "" {
			return bad("--tls=files needs --tls-cert and --tls-key")
		}
	default:
		return bad("unknown TLS mode %q (self-signed, acme, files)", c.TLS)
	}
	switch {
	case c.MaxHeaderBytes < 1024:
		return bad("max header bytes %d < 1024", c.MaxHeaderBytes)
	case c.MaxBodyBytes < 1024:
		return bad("max body bytes %d < 1024", c.MaxBodyBytes)
	case c.NonceRate < 0 || c.NonceBurst < 1:
		return bad("nonce rate %v burst %d", c.NonceRate, c.NonceBurst)
	case c.QuoteConcurrency < 1:
		return bad("quote concurrency %d", c.QuoteConcurrency)
	}
	return nil
}

// backendTarget is a parsed Config.Backend.
type backendTarget struct {
	url        *url.URL // scheme+host used for requests
	unixSocket string   // non-empty for "unix:" backends
}

func parseBackend(s string) (backendTarget, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return backendTarget{}, fmt.Errorf("%w: --backend unix: needs a socket path", ErrConfig)
		}
		return backendTarget{url: &url.URL{Scheme: "http", Host: "backend"}, unixSocket: path}, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return backendTarget{}, fmt.Errorf("%w: --backend %q is neither http://host:port nor unix:/path", ErrConfig, s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return backendTarget{}, fmt.Errorf("%w: --backend %q must not have a path or query", ErrConfig, s)
	}
	return backendTarget{url: &url.URL{Scheme: u.Scheme, Host: u.Host}}, nil
}
