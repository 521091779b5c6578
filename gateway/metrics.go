package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, on its own registry (served
// at /metrics of the gateway; the backend's metrics are not proxied).
type metrics struct {
	reg              *prometheus.Registry
	quotes           *prometheus.CounterVec
	quoteLatency     *prometheus.HistogramVec
	evidenceRequests *prometheus.CounterVec
	proxyErrors      *prometheus.CounterVec
	receipts         *prometheus.CounterVec
	certificates     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		quotes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tdxl_gateway_quotes_total",
			Help: "Evidence documents issued, by kind (cached: nonce-less, per certificate; nonce: fresh) and result.",
		}, []string{"kind", "result"}),
		quoteLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tdxl_gateway_quote_duration_seconds",
			Help:    "Time to obtain one quote from the TEE, by kind.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		evidenceRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tdxl_gateway_evidence_requests_total",
			Help: "Requests to the evidence endpoint, by result (ok, bad_nonce, rate_limited, not_ready, error).",
		}, []string{"result"}),
		proxyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tdxl_gateway_proxy_errors_total",
			Help: "Requests the gateway could not proxy, by reason (backend, body_too_large, timeout, canceled).",
		}, []string{"reason"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tdxl_gateway_receipts_total",
			Help: "Receipts attached to generation responses, by result (ok, error).",
		}, []string{"result"}),
		certificates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tdxl_gateway_certificates_total",
			Help: "Certificates the gateway started serving (start, renewals, reloads, rotations).",
		}),
	}
	m.reg.MustRegister(m.quotes, m.quoteLatency, m.evidenceRequests, m.proxyErrors, m.receipts, m.certificates,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
