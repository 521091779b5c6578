package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"net/http"
	"sync"
	"time"
)

// Causes of a job's context cancellation.
var (
	errTimeout  = errors.New("request timed out")
	errShutdown = errors.New("server shutting down")
	errFinished = errors.New("job finished")
)

// worker runs queued jobs one at a time until the queue is closed and empty
// or ctx is done. PNG encoding and storing of a job overlap the engine's
// work on the next one (at most one job is being finished at a time).
func (s *Server) worker(ctx context.Context, eng Engine) {
	var finishing sync.WaitGroup
	slot := make(chan struct{}, 1)
	defer func() {
		finishing.Wait()
		close(s.workerDone)
	}()
	for {
		j := s.queue.pop(ctx)
		s.metrics.queueDepth.Set(float64(s.queue.len()))
		if j == nil {
			return
		}
		if j.ctx.Err() != nil {
			j.finish(nil, s.cancelError(j))
			continue
		}
		out, apiErr := s.runEngine(eng, j)
		if apiErr != nil {
			j.finish(nil, apiErr)
			continue
		}
		slot <- struct{}{}
		finishing.Add(1)
		go func() {
			defer finishing.Done()
			defer func() { <-slot }()
			s.complete(eng, j, out)
		}()
	}
}

// engineOutput is what the engine made for one job.
type engineOutput struct {
	imgs  []image.Image
	lat   []float64 // per image: the latency of its run
	total time.Duration
}

// complete encodes and stores (or inlines) a job's images and answers it.
func (s *Server) complete(eng Engine, j *job, out *engineOutput) {
	res, apiErr := s.finishImages(eng, j, out)
	if apiErr != nil {
		j.finish(nil, apiErr)
		return
	}
	s.metrics.images.Add(float64(j.req.Images()))
	s.metrics.latency.WithLabelValues(j.req.Size).Observe(time.Since(j.created).Seconds())
	j.finish(res, nil)
	if res.files != nil && s.store.needsSweep() {
		if _, err := s.store.Sweep(); err != nil {
			s.log.Warn("retention sweep failed", "err", err)
		}
	}
}

// observeJob keeps a moving average of job durations for Retry-After.
func (s *Server) observeJob(d time.Duration) {
	s.avgMu.Lock()
	defer s.avgMu.Unlock()
	if s.avgJob == 0 {
		s.avgJob = d
	} else {
		s.avgJob = (s.avgJob*7 + d) / 8
	}
}

func (s *Server) retryAfter() int {
	s.avgMu.Lock()
	avg := s.avgJob
	s.avgMu.Unlock()
	secs := int(avg.Seconds()*float64(s.queue.len()+1)) + 1
	return min(max(secs, 1), 3600)
}

// runEngine runs the `number` engine passes of j.
func (s *Server) runEngine(eng Engine, j *job) (*engineOutput, *APIError) {
	j.state.Store(stateRunning)
	s.metrics.running.Set(1)
	defer s.metrics.running.Set(0)
	start := time.Now()
	r := j.req
	o := &engineOutput{imgs: make([]image.Image, 0, r.Images()), lat: make([]float64, 0, r.Images())}
	for n := 0; n < r.Number; n++ {
		base := int64(n * r.Steps)
		t0 := time.Now()
		res, err := eng.Generate(j.ctx, EngineRequest{
			Prompt: r.Prompt, Width: r.Width, Height: r.Height, Steps: r.Steps, Batch: r.Batch,
			Seed:     r.Seed + int64(n),
			Progress: func(done, _ int) { j.stepsDone.Store(base + int64(done)) },
		})
		d := time.Since(t0)
		if err == nil {
			err = checkImages(res, r)
		}
		if err != nil {
			return nil, s.engineError(j, err)
		}
		for _, st := range res.StepTimes {
			s.metrics.stepTime.Observe(st.Seconds())
		}
		o.total += d
		s.metrics.generation.WithLabelValues(r.Size).Observe(d.Seconds())
		for _, img := range res.Images {
			o.imgs = append(o.imgs, img)
			o.lat = append(o.lat, d.Seconds())
		}
	}
	j.stepsDone.Store(int64(j.stepsTotal))
	s.observeJob(time.Since(start))
	return o, nil
}

// finishImages builds j's response and encodes (stores or inlines) its images.
func (s *Server) finishImages(eng Engine, j *job, o *engineOutput) (*jobResult, *APIError) {
	r := j.req
	resp := Response{
		AverageImageGenerationTimeSeconds: o.total.Seconds() / float64(len(o.imgs)),
		GenerationTimeSeconds:             o.total.Seconds(),
		ID:                                j.id,
		Meta: Meta{Input: MetaInput{Batch: r.Batch, Model: s.modelName(eng), Number: r.Number,
			Prompt: r.Prompt, Seed: r.Seed, Size: r.Size, Step: r.Steps}},
		Output: make([]Output, len(o.imgs)),
		Status: stateSuccess,
	}
	for i := range o.imgs {
		resp.Output[i].LatencySeconds = o.lat[i]
	}
	res, err := s.encode(j, resp, o.imgs)
	if err != nil {
		s.log.Error("storing images failed", "id", j.id, "err", err)
		return nil, &APIError{Status: http.StatusInternalServerError, Code: CodeEngineError,
			Message: "storing the images failed (request id " + j.id + ")"}
	}
	return res, nil
}

func checkImages(out *EngineResult, r Request) error {
	if out == nil || len(out.Images) != r.Batch {
		return fmt.Errorf("engine returned a wrong number of images")
	}
	for _, img := range out.Images {
		if img == nil || img.Bounds().Dx() != r.Width || img.Bounds().Dy() != r.Height {
			return fmt.Errorf("engine returned an image of the wrong size")
		}
	}
	return nil
}

// encode PNG-encodes imgs (and the grid when number > 1) and either writes
// them to the store (url format) or inlines them (b64_json).
func (s *Server) encode(j *job, resp Response, imgs []image.Image) (*jobResult, error) {
	r := j.req
	names := make([]string, len(imgs))
	for i := range imgs {
		names[i] = fmt.Sprintf("%d_%d.png", i/r.Batch, i%r.Batch)
	}
	var p *pending
	if r.ResponseFormat == FormatURL {
		var err error
		if p, err = s.store.begin(j.id); err != nil {
			return nil, err
		}
	}
	ok := false
	defer func() {
		if p != nil && !ok {
			p.abort()
		}
	}()
	put := func(name string, img image.Image) (string, error) {
		b, err := encodePNG(img)
		if err != nil {
			return "", err
		}
		if p == nil {
			return base64.StdEncoding.EncodeToString(b), nil
		}
		return "", p.write(name, b)
	}
	for i, img := range imgs {
		b64, err := put(names[i], img)
		if err != nil {
			return nil, err
		}
		resp.Output[i].B64JSON = b64
	}
	grid := r.Number > 1
	if grid {
		g, err := makeGrid(imgs)
		if err != nil {
			return nil, err
		}
		if resp.GridB64JSON, err = put(gridFile, g); err != nil {
			return nil, err
		}
	}
	if p == nil {
		ok = true
		return &jobResult{resp: resp, grid: grid}, nil
	}
	if err := p.commit(storedMeta{Response: resp, Files: names, Grid: grid}); err != nil {
		return nil, err
	}
	ok = true
	return &jobResult{resp: resp, files: names, grid: grid}, nil
}

func (s *Server) engineError(j *job, err error) *APIError {
	if j.ctx.Err() != nil {
		return s.cancelError(j)
	}
	s.log.Error("engine failed", "id", j.id, "err", err)
	return &APIError{Status: http.StatusInternalServerError, Code: CodeEngineError,
		Message: "image generation failed (request id " + j.id + ")"}
}

// cancelError maps the cause of a cancelled job to its answer.
func (s *Server) cancelError(j *job) *APIError {
	switch cause := context.Cause(j.ctx); {
	case errors.Is(cause, errTimeout):
		return &APIError{Status: http.StatusGatewayTimeout, Code: CodeTimeout,
			Message: fmt.Sprintf("the request did not finish within %v", s.cfg.Timeout)}
	case errors.Is(cause, errShutdown):
		return &APIError{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
			Message: "the server is shutting down; retry on another replica", RetryAfter: 1}
	default:
		s.log.Info("job cancelled", "id", j.id, "cause", cause)
		return &APIError{Status: 499, Code: "cancelled", Message: "the client went away"}
	}
}

// absolute turns a finished job's result into the body sent to a client
// whose image URLs start with base (e.g. "http://host:5000").
func (res *jobResult) absolute(base string) Response {
	resp := res.resp
	resp.Output = append([]Output(nil), res.resp.Output...)
	if res.files != nil {
		for i := range resp.Output {
			resp.Output[i].URL = imageURL(base, resp.ID, res.files[i])
		}
		if res.grid {
			resp.GridURL = imageURL(base, resp.ID, gridFile)
		}
	}
	return resp
}

func imageURL(base, id, name string) string { return base + "/images/" + id + "/" + name }
