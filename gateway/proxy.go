package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/tdxl/tdxl/gateway/receipt"
)

// newBackendTransport returns the transport to the backend: plain HTTP to a
// loopback address, or HTTP over a unix socket.
func newBackendTransport(t backendTarget, responseTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // never an environment proxy: the backend is local
		DialContext:           d.DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
	}
	if t.unixSocket != "" {
		sock := t.unixSocket
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
	}
	return tr
}

// newProxy returns the reverse proxy to the backend. It sets
// X-Forwarded-For (the client's IP), X-Forwarded-Host (the Host the client
// used) and X-Forwarded-Proto ("https"), replacing whatever the client sent,
// so the backend builds image URLs with the scheme and host the client used;
// the Host header itself is passed through unchanged.
func (g *Gateway) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(g.backend.url)
			// Keep the Host the client used, so a backend that does not
			// trust X-Forwarded-Host (e.g. from a unix-socket peer) still
			// builds image URLs with the client's host.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Del(receipt.Header)
		},
		Transport:     g.transport,
		FlushInterval: -1, // stream (progress, large images) without buffering
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(receipt.Header) // only the gateway signs receipts
			return nil
		},
		ErrorHandler: g.proxyError,
	}
}

// serveBackendMetrics answers GET /metrics/backend with the backend's own
// /metrics: /metrics is the gateway's, and in attested mode the backend
// listens on loopback only, so this is how its queue and generation metrics
// reach a scraper.
func (g *Gateway) serveBackendMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	out := r.Clone(ctx)
	out.URL.Path, out.URL.RawPath, out.URL.RawQuery = "/metrics", "", ""
	out.Body, out.ContentLength = http.NoBody, 0
	g.proxy.ServeHTTP(w, out)
}

// proxyError maps a failed round trip to a JSON error.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		g.m.proxyErrors.WithLabelValues("body_too_large").Inc()
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "request body over the gateway's limit")
	case errors.Is(err, context.Canceled):
		g.m.proxyErrors.WithLabelValues("canceled").Inc()
		w.WriteHeader(499) // client went away; nobody reads this
	case errors.Is(err, context.DeadlineExceeded):
		g.m.proxyErrors.WithLabelValues("timeout").Inc()
		writeError(w, http.StatusGatewayTimeout, "backend_timeout", "the backend did not answer in time")
	default:
		g.m.proxyErrors.WithLabelValues("backend").Inc()
		g.log.Error("proxying to backend", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusBadGateway, "backend_unavailable", "the backend is unavailable")
	}
}

// serveProxy proxies everything that is not the gateway's own endpoint,
// with the body limit and the proxy timeout; generation requests get a
// receipt.
func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) {
	if !g.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "gateway is starting: "+g.notReadyReason())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ProxyTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	if r.ContentLength > g.cfg.MaxBodyBytes {
		g.m.proxyErrors.WithLabelValues("body_too_large").Inc()
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "request body over the gateway's limit")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)
	if wantsReceipt(r) {
		g.serveWithReceipt(w, r)
		return
	}
	g.proxy.ServeHTTP(w, r)
}

// serveReady answers /readyz: 503 until the gateway has its certificate,
// evidence and measurements, then the backend's own /readyz.
func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	if !g.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "gateway is starting: "+g.notReadyReason())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// serveHealth answers /healthz: the gateway process is alive.
func serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}
