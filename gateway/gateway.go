// Package gateway is tdxl's attested TLS front: it terminates TLS with a key
// whose SubjectPublicKeyInfo is bound into a TEE quote, serves that evidence
// at /.well-known/tdxl/attestation, reverse-proxies everything else to the
// backend (loopback or unix socket), and signs a receipt for each image
// generation.
//
// Life cycle: New(cfg) validates the configuration; Run(ctx) listens, takes
// the runtime measurements (Config.Measure), obtains the certificate(s) and
// quotes them, then serves until ctx is done and shuts down gracefully.
//
// Evidence endpoint: GET /.well-known/tdxl/attestation[?nonce=HEX] returns
// a COSE_Sign1 (package gateway/envelope) signed by the key of the
// certificate served on that same connection, whose payload is an
// attest.Evidence with REPORTDATA = attest.ReportData(SPKI, nonce). Without a
// nonce it is the cached evidence of that certificate (quoted once per
// certificate: at start, and again for each renewed, reloaded or rotated
// certificate); with a nonce (16..64 bytes as hex) a fresh quote,
// rate-limited per client IP. Bad nonces get 400.
//
// The gateway imports neither the backend nor the kernels.
package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tdxl/tdxl/attest"
)

// Gateway is one attested TLS front. Create with New, start with Run.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	backend   backendTarget
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	m         *metrics
	ev        *evidenceService
	limiter   *rateLimiter
	src       certSource

	ready     atomic.Bool
	phase     atomic.Value // string: why not ready
	rtMu      sync.RWMutex
	rt        Runtime
	conns     sync.Map // net.Conn (raw) → *connInfo
	addr      atomic.Value
	requoting sync.Map // certID → struct{}: background quotes in flight

	bootOnce sync.Once
	boot     *tls.Certificate
	bootErr  error
}

type connInfoKey struct{}

// connInfo records which certificate was served on one TLS connection.
type connInfo struct {
	cert atomic.Pointer[tls.Certificate]
}

// New checks cfg and returns a gateway ready to Run.
func New(cfg Config) (*Gateway, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	bt, _ := parseBackend(c.Backend)
	g := &Gateway{cfg: c, log: c.Logger.With("component", "gateway"), backend: bt, m: newMetrics(), rt: c.Runtime}
	g.transport = newBackendTransport(bt, c.ProxyTimeout)
	g.proxy = g.newProxy()
	g.ev = newEvidenceService(&g.cfg, g.runtime, g.m)
	g.limiter = newRateLimiter(c.NonceRate, c.NonceBurst)
	g.phase.Store("starting")
	return g, nil
}

func (g *Gateway) runtime() Runtime {
	g.rtMu.RLock()
	defer g.rtMu.RUnlock()
	return g.rt
}

func (g *Gateway) notReadyReason() string { return g.phase.Load().(string) }

// Ready reports whether the gateway serves evidence and proxies requests.
func (g *Gateway) Ready() bool { return g.ready.Load() }

// Addr returns the listening address once Run has started listening (nil
// before).
func (g *Gateway) Addr() net.Addr {
	a, _ := g.addr.Load().(net.Addr)
	return a
}

// Runtime returns the runtime measurements the evidence carries.
func (g *Gateway) Runtime() Runtime { return g.runtime() }

// Handler returns the gateway's HTTP handler (without TLS): for embedding
// and tests.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(EvidencePath, g.serveEvidence)
	mux.HandleFunc("/healthz", serveHealth)
	mux.HandleFunc("/readyz", g.serveReady)
	mux.Handle("/metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /metrics/backend", g.serveBackendMetrics)
	mux.HandleFunc("/", g.serveProxy)
	return mux
}

// newCertSource builds the configured certificate source.
func (g *Gateway) newCertSource(listenAddr string) (certSource, error) {
	switch g.cfg.TLS {
	case TLSSelfSigned:
		names := g.cfg.SelfSignedNames
		if len(names) == 0 {
			names = defaultSelfSignedNames()
		}
		return &selfSigned{
			names: names, validity: g.cfg.SelfSignedValidity,
			evidence: func(ctx context.Context, key crypto.Signer) ([]byte, error) { return g.ev.issue(ctx, key, nil) },
			adopt: func(cert *tls.Certificate, msg []byte) {
				g.ev.store(idOf(cert), msg)
				g.m.certificates.Inc()
				g.log.Info("serving new self-signed certificate", "not_after", cert.Leaf.NotAfter)
			},
			onError: func(err error) { g.log.Error("rotating the self-signed certificate", "error", err) },
		}, nil
	case TLSFiles:
		return &fileSource{
			certFile: g.cfg.CertFile, keyFile: g.cfg.KeyFile, interval: g.cfg.FilesReloadInterval,
			notify:  g.newCertificate,
			onError: func(err error) { g.log.Error("reloading TLS files", "error", err) },
		}, nil
	case TLSACME:
		return newACMESource(g.cfg.ACME, listenAddr, g.newCertificate, g.log)
	}
	return nil, fmt.Errorf("%w: TLS mode %q", ErrConfig, g.cfg.TLS)
}

// newCertificate is called by the sources for each certificate they start
// serving: it quotes it (cached evidence) in the background.
func (g *Gateway) newCertificate(cert *tls.Certificate) {
	id := idOf(cert)
	if _, ok := g.ev.lookup(id); ok {
		return
	}
	if _, busy := g.requoting.LoadOrStore(id, struct{}{}); busy {
		return
	}
	g.m.certificates.Inc()
	go func() {
		defer g.requoting.Delete(id)
		ctx, cancel := context.WithTimeout(context.Background(), 2*g.cfg.QuoteTimeout)
		defer cancel()
		if _, err := g.ev.cached(ctx, cert); err != nil {
			g.log.Error("quoting new certificate", "error", err)
		}
	}()
}

// getCertificate serves the source's certificate and records it for the
// connection, so the evidence endpoint and receipts use exactly that key.
func (g *Gateway) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := g.src.getCertificate(hello)
	if (err != nil || cert == nil) && !g.ready.Load() && !isACMEChallenge(hello) {
		// Starting: serve a throw-away certificate so /healthz and /readyz
		// answer while the model is measured; the evidence endpoint and
		// the proxy answer 503 until ready.
		return g.bootstrapCert()
	}
	if err != nil || cert == nil {
		return cert, err
	}
	if v, ok := g.conns.Load(hello.Conn); ok {
		v.(*connInfo).cert.Store(cert)
	}
	if !isACMEChallenge(hello) && g.ready.Load() {
		if _, ok := g.ev.lookup(idOf(cert)); !ok {
			g.newCertificate(cert) // a certificate we have not quoted yet
		}
	}
	return cert, nil
}

// bootstrapCert returns the start-up certificate (made once, in memory,
// with no evidence: nothing attested is served under it).
func (g *Gateway) bootstrapCert() (*tls.Certificate, error) {
	g.bootOnce.Do(func() {
		s := &selfSigned{names: []string{"localhost"}, validity: time.Hour,
			evidence: func(context.Context, crypto.Signer) ([]byte, error) { return nil, nil },
			adopt:    func(*tls.Certificate, []byte) {}}
		if err := s.rotate(context.Background()); err != nil {
			g.bootErr = err
			return
		}
		g.boot = s.cert
	})
	return g.boot, g.bootErr
}

// servedCertificate returns the certificate served on r's connection.
func (g *Gateway) servedCertificate(r *http.Request) *tls.Certificate {
	if ci, ok := r.Context().Value(connInfoKey{}).(*connInfo); ok {
		if c := ci.cert.Load(); c != nil {
			return c
		}
	}
	if r.TLS == nil {
		return nil
	}
	c, err := g.src.getCertificate(&tls.ClientHelloInfo{ServerName: r.TLS.ServerName})
	if err != nil {
		return nil
	}
	return c
}

func rawConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// Run serves until ctx is done, then shuts down gracefully (at most
// ShutdownGrace). It returns nil after a clean shutdown.
func (g *Gateway) Run(ctx context.Context) error {
	ln := g.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Listen); err != nil {
			return fmt.Errorf("listening on %s: %w", g.cfg.Listen, err)
		}
	}
	g.addr.Store(ln.Addr())
	src, err := g.newCertSource(ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	g.src = src
	defer src.close()

	tlsCfg := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: g.getCertificate,
		NextProtos:     append([]string{"h2", "http/1.1"}, src.nextProtos()...),
	}
	srv := g.newServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	g.log.Info("listening", "addr", ln.Addr().String(), "tls", g.cfg.TLS, "tee", g.cfg.Issuer.TEE(), "backend", g.cfg.Backend)
	if g.cfg.Issuer.TEE() == attest.TEENone {
		g.log.Warn("UNATTESTED MODE (--tee=none): the evidence carries no quote and clients must opt in to use this gateway")
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	startErr := make(chan error, 1)
	go func() { startErr <- g.start(runCtx) }()

	var result error
	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case err := <-startErr:
		if err != nil {
			if ctx.Err() == nil { // a stop during start-up is a clean stop
				result = err
			}
			break
		}
		go src.run(runCtx)
		select {
		case <-ctx.Done():
		case err := <-serveErr:
			return fmt.Errorf("serving: %w", err)
		}
	case <-ctx.Done():
	}
	g.ready.Store(false)
	g.phase.Store("shutting down")
	stopRun()
	sctx, cancel := context.WithTimeoutCause(context.Background(), g.cfg.ShutdownGrace,
		fmt.Errorf("graceful shutdown took longer than %v", g.cfg.ShutdownGrace))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		if result == nil {
			result = fmt.Errorf("shutting down: %w", context.Cause(sctx))
		}
	}
	g.transport.CloseIdleConnections()
	g.log.Info("stopped")
	return result
}

// newServer returns the HTTP server with the configured limits; it records
// each connection so the served certificate can be found per request.
func (g *Gateway) newServer() *http.Server {
	return &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		ReadTimeout:       g.cfg.ReadTimeout,
		WriteTimeout:      g.cfg.ProxyTimeout + time.Minute,
		IdleTimeout:       g.cfg.IdleTimeout,
		MaxHeaderBytes:    g.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ci := &connInfo{}
			g.conns.Store(rawConn(c), ci)
			return context.WithValue(ctx, connInfoKey{}, ci)
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				g.conns.Delete(rawConn(c))
			}
		},
	}
}

// start measures, obtains the certificates and quotes them; then the
// gateway is ready.
func (g *Gateway) start(ctx context.Context) error {
	if g.cfg.Measure != nil {
		g.phase.Store("measuring model, binaries and configuration")
		rt, err := g.cfg.Measure(ctx)
		if err != nil {
			return fmt.Errorf("runtime measurements: %w", err)
		}
		g.rtMu.Lock()
		g.rt = rt
		g.rtMu.Unlock()
	}
	g.phase.Store("obtaining certificate")
	if err := g.src.start(ctx); err != nil {
		return err
	}
	g.phase.Store("quoting certificate")
	certs := g.src.current()
	if len(certs) == 0 {
		return errNoCert
	}
	for _, c := range certs {
		if _, err := g.ev.cached(ctx, c); err != nil {
			return fmt.Errorf("quoting the TLS key: %w", err)
		}
	}
	g.phase.Store("ready")
	g.ready.Store(true)
	g.log.Info("ready", "events", len(g.runtime().Events), "rtmr_extended", g.runtime().Extended)
	return nil
}
