package backend

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the service's Prometheus metrics, on a registry of its own so
// that several servers (tests) never collide.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec   // route, code
	latency    *prometheus.HistogramVec // size: accepted to answered, queueing included
	generation *prometheus.HistogramVec // size: one engine pass
	queueDepth prometheus.Gauge
	running    prometheus.Gauge
	images     prometheus.Counter
	stepTime   prometheus.Histogram
	ready      prometheus.Gauge
}

func newMetrics() *metrics {
	secs := []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tdxl_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tdxl_request_duration_seconds", Help: "Generation requests from acceptance to answer (queueing included), by size.",
			Buckets: secs,
		}, []string{"size"}),
		generation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tdxl_engine_pass_seconds", Help: "One engine forward pass (one run of `number`), by size.",
			Buckets: secs,
		}, []string{"size"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tdxl_queue_depth", Help: "Requests waiting for the engine.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tdxl_jobs_running", Help: "Requests the engine is working on (0 or 1).",
		}),
		images: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tdxl_images_generated_total", Help: "Images generated.",
		}),
		stepTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tdxl_engine_step_seconds", Help: "Duration of one denoising step.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tdxl_engine_ready", Help: "1 once the model is loaded.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.generation, m.queueDepth, m.running, m.images, m.stepTime, m.ready,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
