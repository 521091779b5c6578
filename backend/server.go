package backend

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the text-to-image service. Create it with New, then Run (or
// Serve on a listener of your own). A Server serves once.
type Server struct {
	cfg      Config
	log      *slog.Logger
	load     Loader
	store    *Store
	queue    *jobQueue
	metrics  *metrics
	randSeed func() int64
	limits   Limits

	engine   atomic.Pointer[engineBox] // nil until loaded
	ready    chan struct{}             // closed when the engine is loaded
	draining atomic.Bool

	jobsCtx    context.Context // cancelled (errShutdown) when the grace period ends
	jobsCancel context.CancelCauseFunc
	workerDone chan struct{}
	workerOn   atomic.Bool

	avgMu  sync.Mutex
	avgJob time.Duration

	asyncMu    sync.Mutex
	async      map[string]*job
	asyncOrder []string
}

type engineBox struct{ e Engine }

// New checks cfg, opens the image store and returns a server that will
// call load once it listens.
func New(cfg Config, load Loader) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if load == nil {
		return nil, fmt.Errorf("%w: no engine loader", ErrConfig)
	}
	cfg = cfg.withDefaults()
	store, err := OpenStore(cfg.OutputDir, cfg.RetentionAge, cfg.RetentionBytes, cfg.Now, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, load: load, store: store,
		queue: newJobQueue(cfg.Queue), metrics: newMetrics(),
		// random seeds stay below 2^53 so that they survive JSON in every
		// language (JavaScript numbers are doubles) and can be sent back
		randSeed: func() int64 { return rand.Int64N(1 << 53) },
		ready:    make(chan struct{}), workerDone: make(chan struct{}),
		async: map[string]*job{},
	}
	s.limits.MaxImages = cfg.MaxImages
	s.limits.Sizes, _ = ParseSizes(cfg.Sizes) // checked by Validate
	s.jobsCtx, s.jobsCancel = context.WithCancelCause(context.Background())
	return s, nil
}

// Ready is closed once the engine is loaded.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Store is the server's image store.
func (s *Server) Store() *Store { return s.store }

// Run listens on cfg.Listen and serves until ctx is done, then drains (see
// Serve).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln, loading the engine in the background, until ctx is
// done. Then it drains: it stops accepting connections and new requests,
// answers queued requests 503, lets the running job finish within the grace
// period (cancelling it after that) and returns. It returns nil after a
// drain, or the error that stopped it (listener failure, model load failure).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "output_dir", s.store.Dir())

	loadCtx, loadCancel := context.WithCancel(ctx)
	defer loadCancel()
	loadErr := make(chan error, 1)
	go s.loadEngine(loadCtx, loadErr)
	stopSweep := s.sweepEvery(time.Minute)
	defer stopSweep()

	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "cause", context.Cause(ctx), "grace", s.cfg.Grace)
	case err = <-serveErr:
		err = fmt.Errorf("serving: %w", err)
	case err = <-loadErr:
	}
	loadCancel()
	s.drain(srv)
	return err
}

func (s *Server) loadEngine(ctx context.Context, errc chan<- error) {
	start := time.Now()
	e, err := s.load(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("loading model failed", "err", err)
			errc <- fmt.Errorf("loading model: %w", err)
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	s.engine.Store(&engineBox{e: e})
	info := e.Info()
	s.log.Info("model loaded", "model", s.modelName(e), "isa", info.ISA, "threads", info.Threads,
		"seconds", time.Since(start).Seconds())
	s.metrics.ready.Set(1)
	s.workerOn.Store(true)
	go s.worker(s.jobsCtx, e)
	close(s.ready)
}

func (s *Server) sweepEvery(d time.Duration) (stop func()) {
	if _, err := s.store.Sweep(); err != nil {
		s.log.Warn("retention sweep failed", "err", err)
	}
	t := time.NewTicker(d)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				if _, err := s.store.Sweep(); err != nil {
					s.log.Warn("retention sweep failed", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// drain implements the shutdown described on Serve.
func (s *Server) drain(srv *http.Server) {
	s.draining.Store(true)
	s.metrics.ready.Set(0)
	for _, j := range s.queue.close() {
		j.finish(nil, &APIError{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
			Message: "the server is shutting down; retry on another replica", RetryAfter: 1})
	}
	s.metrics.queueDepth.Set(0)
	graceCtx, cancel := context.WithTimeout(context.Background(), s.cfg.Grace)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(graceCtx) }()
	if s.workerOn.Load() {
		select {
		case <-s.workerDone:
		case <-graceCtx.Done():
			s.log.Warn("grace period over; cancelling the running job")
			s.jobsCancel(errShutdown)
			select {
			case <-s.workerDone:
			case <-time.After(2 * time.Second):
				s.log.Error("engine did not stop after cancellation")
			}
		}
	}
	s.jobsCancel(errShutdown)
	if err := <-shut; err != nil {
		_ = srv.Close()
	}
	s.log.Info("stopped")
}

func (s *Server) currentEngine() Engine {
	if b := s.engine.Load(); b != nil {
		return b.e
	}
	return nil
}

func (s *Server) modelName(e Engine) string {
	if s.cfg.ModelName != "" {
		return s.cfg.ModelName
	}
	if e != nil {
		if m := e.Info().Model; m != "" {
			return m
		}
	}
	return DefaultModelName
}

// errNotReady and errDraining are the 503 answers before load and after
// shutdown began.
func errNotReady() *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Code: CodeNotReady,
		Message: "the model is still loading; retry shortly", RetryAfter: 5}
}

func errDraining() *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
		Message: "the server is shutting down; retry on another replica", RetryAfter: 1}
}
