package backend

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpenAPI is the service's OpenAPI 3 description, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Handler returns the service's HTTP handler (routing, request ids, logs
// and metrics included).
func (s *Server) Handler() http.Handler {
	metricsH := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return s.middleware(func(w http.ResponseWriter, r *http.Request) string {
		p := r.URL.Path
		switch {
		case p == "/api/text2image":
			return s.method(w, r, "text2image", http.MethodPost, s.handleText2Image)
		case strings.HasPrefix(p, "/api/text2image/"):
			return s.method(w, r, "text2image_status", http.MethodGet, s.handleStatus)
		case p == "/v1/images/generations":
			return s.method(w, r, "openai_generations", http.MethodPost, s.handleOpenAI)
		case strings.HasPrefix(p, "/images/"):
			return s.method(w, r, "images", http.MethodGet, s.handleImage)
		case p == "/healthz":
			return s.method(w, r, "healthz", http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			})
		case p == "/readyz":
			return s.method(w, r, "readyz", http.MethodGet, s.handleReady)
		case p == "/metrics":
			return s.method(w, r, "metrics", http.MethodGet, metricsH.ServeHTTP)
		case p == "/openapi.yaml":
			return s.method(w, r, "openapi", http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/yaml")
				_, _ = w.Write(OpenAPI)
			})
		}
		writeError(w, "", &APIError{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such endpoint"}, false)
		return "other"
	})
}

// method runs h when r uses want (GET also admits HEAD) and answers 405
// otherwise; it returns route for the metrics.
func (s *Server) method(w http.ResponseWriter, r *http.Request, route, want string, h http.HandlerFunc) string {
	if r.Method == want || (want == http.MethodGet && r.Method == http.MethodHead) {
		h(w, r)
		return route
	}
	w.Header().Set("Allow", want)
	writeError(w, "", &APIError{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
		Message: r.Method + " is not allowed here; use " + want}, false)
	return route
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	switch e := s.currentEngine(); {
	case s.draining.Load():
		writeError(w, "", errDraining(), false)
	case e == nil:
		writeError(w, "", errNotReady(), false)
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "model": s.modelName(e)})
	}
}

// bodyReadTimeout bounds reading one request body.
var bodyReadTimeout = 30 * time.Second

// readBody reads at most cfg.MaxBodyBytes of the body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	tooLarge := &APIError{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
		Message: "request body is larger than the limit"}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	// A body must arrive within bodyReadTimeout (no slow-drip bodies); the
	// deadline is lifted afterwards so that it cannot cut a long generation
	// (net/http cancels a request's context when a read deadline passes).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest(CodeInvalidJSON, "reading the request body: %v", err)
	}
	return b, nil
}

// handleText2Image is POST /api/text2image. The body is JSON whatever the
// Content-Type says (curl -d sends application/x-www-form-urlencoded).
func (s *Server) handleText2Image(w http.ResponseWriter, r *http.Request) {
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, "", e, false)
		return
	}
	req, err := DecodeRequest(body, s.limits, s.randSeed)
	if err != nil {
		writeError(w, "", AsAPIError(err), false)
		return
	}
	j, e := s.submit(r, req)
	if e != nil {
		writeError(w, "", e, false)
		return
	}
	if req.Async {
		w.Header().Set("Location", "/api/text2image/"+j.id)
		writeJSON(w, http.StatusAccepted, s.asyncStatus(r, j))
		return
	}
	if e := s.wait(j); e != nil {
		writeError(w, j.id, e, false)
		return
	}
	writeJSON(w, http.StatusOK, j.result.absolute(s.baseURL(r)))
}

// handleOpenAI is POST /v1/images/generations.
func (s *Server) handleOpenAI(w http.ResponseWriter, r *http.Request) {
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, "", e, true)
		return
	}
	req, err := DecodeOpenAIRequest(body, s.limits, s.randSeed)
	if err != nil {
		writeError(w, "", AsAPIError(err), true)
		return
	}
	j, e := s.submit(r, req)
	if e == nil {
		e = s.wait(j)
	}
	if e != nil {
		id := ""
		if j != nil {
			id = j.id
		}
		writeError(w, id, e, true)
		return
	}
	resp := j.result.absolute(s.baseURL(r))
	out := OpenAIResponse{Created: s.cfg.Now().Unix(), Data: make([]OpenAIItem, len(resp.Output))}
	for i, o := range resp.Output {
		out.Data[i] = OpenAIItem{URL: o.URL, B64JSON: o.B64JSON}
	}
	writeJSON(w, http.StatusOK, out)
}

// submit queues req. Synchronous jobs live as long as their client's
// request; asynchronous ones as long as the server (both bounded by the
// timeout, and cancelled when the grace period of a shutdown ends).
func (s *Server) submit(r *http.Request, req Request) (*job, *APIError) {
	if s.draining.Load() {
		return nil, errDraining()
	}
	eng := s.currentEngine()
	if eng == nil {
		return nil, errNotReady()
	}
	if e := checkEngineLimits(eng.Info(), req); e != nil {
		return nil, e
	}
	parent := r.Context()
	if req.Async {
		parent = s.jobsCtx
	}
	j := newJob(parent, uuid.NewString(), req, s.cfg.Timeout, time.Now())
	if !req.Async {
		j.releaseStop = context.AfterFunc(s.jobsCtx, func() { j.cancel(errShutdown) })
	}
	switch err := s.queue.push(j); {
	case errors.Is(err, errQueueFull):
		e := &APIError{Status: http.StatusTooManyRequests, Code: CodeQueueFull,
			Message: "too many requests are waiting; retry later", RetryAfter: s.retryAfter()}
		j.finish(nil, e) // releases the job's context
		return nil, e
	case err != nil:
		j.finish(nil, errDraining())
		return nil, errDraining()
	}
	s.metrics.queueDepth.Set(float64(s.queue.len()))
	logger(r.Context(), s.log).Info("job queued", "id", j.id, "size", req.Size, "number", req.Number,
		"batch", req.Batch, "step", req.Steps, "seed", req.Seed, "async", req.Async, "format", req.ResponseFormat)
	if req.Async {
		s.registerAsync(j)
	}
	return j, nil
}

// wait blocks until j is finished; if its context ends while it is still
// queued it is taken out of the queue (a client that went away, a timeout).
func (s *Server) wait(j *job) *APIError {
	select {
	case <-j.done:
	case <-j.ctx.Done():
		if s.queue.remove(j) {
			s.metrics.queueDepth.Set(float64(s.queue.len()))
			j.finish(nil, s.cancelError(j))
		}
		<-j.done
	}
	return j.err
}

func (s *Server) registerAsync(j *job) {
	s.asyncMu.Lock()
	defer s.asyncMu.Unlock()
	s.async[j.id] = j
	s.asyncOrder = append(s.asyncOrder, j.id)
	// Forget the oldest finished jobs beyond 1024 (their url results stay
	// readable from the store).
	for len(s.asyncOrder) > 1024 {
		old := s.async[s.asyncOrder[0]]
		if old != nil && old.stateName() != stateSuccess && old.stateName() != stateError {
			break
		}
		delete(s.async, s.asyncOrder[0])
		s.asyncOrder = s.asyncOrder[1:]
	}
}

func (s *Server) asyncStatus(r *http.Request, j *job) AsyncStatus {
	return AsyncStatus{ID: j.id, Status: j.stateName(),
		Progress:  Progress{Done: int(j.stepsDone.Load()), Total: j.stepsTotal},
		StatusURL: s.baseURL(r) + "/api/text2image/" + j.id}
}

// handleStatus is GET /api/text2image/<id>: progress of an async job, then
// the body the synchronous call gives; finished url-format jobs are also
// found in the store (after a restart too).
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/api/text2image/")
	notFound := &APIError{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such request id"}
	if !validID(id) {
		writeError(w, "", notFound, false)
		return
	}
	s.asyncMu.Lock()
	j := s.async[id]
	s.asyncMu.Unlock()
	if j != nil {
		select {
		case <-j.done:
			if j.err != nil {
				writeError(w, id, j.err, false)
			} else {
				writeJSON(w, http.StatusOK, j.result.absolute(s.baseURL(r)))
			}
		default:
			writeJSON(w, http.StatusOK, s.asyncStatus(r, j))
		}
		return
	}
	m, err := s.store.readMeta(id)
	if err != nil {
		writeError(w, "", notFound, false)
		return
	}
	res := &jobResult{resp: m.Response, files: m.Files, grid: m.Grid}
	writeJSON(w, http.StatusOK, res.absolute(s.baseURL(r)))
}

// handleImage is GET /images/<id>/<file>. Only canonical request ids and
// image file names are served; any escape, "..", extra segment, directory
// or unknown file is 404.
func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	notFound := func() {
		writeError(w, "", &APIError{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such image"}, false)
	}
	raw := r.URL.EscapedPath()
	if strings.ContainsAny(raw, "%\\") {
		notFound()
		return
	}
	parts := strings.Split(strings.TrimPrefix(raw, "/images/"), "/")
	if len(parts) != 2 {
		notFound()
		return
	}
	f, fi, err := s.store.Open(parts[0], parts[1])
	if err != nil {
		notFound()
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600, immutable")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
