// Package backend is the text-to-image HTTP service: the seed-compatible
// POST /api/text2image API and its additive extensions, the image store, the
// job queue and the service's lifecycle. It knows nothing of cgo, TEEs or the
// inference core: images come from an Engine, which cmd/tdxl-backend adapts
// from kernels.Pipeline.
package backend

import (
	"context"
	"image"
	"time"
)

// Engine makes images. Implementations must be safe for use by one goroutine
// at a time (the server never calls Generate concurrently) and must stop
// promptly, returning an error wrapping ctx.Err(), when ctx is cancelled.
type Engine interface {
	// Generate runs one forward pass producing req.Batch images of
	// req.Width×req.Height.
	Generate(ctx context.Context, req EngineRequest) (*EngineResult, error)
	// Info describes the loaded model; it is cheap and never fails.
	Info() EngineInfo
}

// EngineRequest is one forward pass (one of the `number` runs of a request).
type EngineRequest struct {
	Prompt        string
	Width, Height int
	Steps         int
	Batch         int
	// Seed fully determines the initial noise: the same seed and inputs
	// give the same images.
	Seed int64
	// Progress, when not nil, is called after each denoising step with the
	// steps done so far and the total for this pass.
	Progress func(done, total int)
}

// EngineResult is what one forward pass produced.
type EngineResult struct {
	// Images holds exactly Batch images of Width×Height.
	Images []image.Image
	// StepTimes holds the duration of each denoising step (may be empty).
	StepTimes []time.Duration
}

// EngineInfo describes the engine for meta.input.model and the logs.
type EngineInfo struct {
	// Model is the model's name, e.g. "stabilityai/sdxl-turbo".
	Model string
	// ISA names the kernel path in use (informational; may be empty).
	ISA string
	// Threads is the number of compute threads (0 if unknown).
	Threads int
	// MaxBatch is the largest batch one pass can make (0 = no limit).
	MaxBatch int
	// MaxBatchPixels bounds batch×width×height of one pass (0 = no limit);
	// larger requests are refused with 400 before they are queued.
	MaxBatchPixels int
}

// Loader opens the engine. The server calls it once, in the background,
// after it has started listening, so /healthz answers while a large model
// loads and /readyz turns 200 when Loader returns.
type Loader func(ctx context.Context) (Engine, error)

// StaticLoader returns a Loader that yields an already opened engine.
func StaticLoader(e Engine) Loader {
	return func(context.Context) (Engine, error) { return e, nil }
}
