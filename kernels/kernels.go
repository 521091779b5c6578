// Package kernels is tdxl's SDXL-Turbo inference core: a C++17 fp32 reference implementation of
// the CLIP text encoders, the UNet, the VAE decoder and the Euler-ancestral scheduler behind a
// narrow C ABI (tdxl_capi.h), with this Go API on top. It is the only cgo package of the project
// and knows nothing of HTTP or TEEs.
//
// Numerics follow diffusers 0.26 + transformers (fp32) and are checked against the golden vectors
// of ../shared/golden (TestGolden). Results do not depend on the thread count: every output element
// is reduced in a fixed order by exactly one thread.
package kernels

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"
)

// Options configure Open. The zero value means: all cores, no logging.
type Options struct {
	Threads int          // worker threads of the C++ pool; 0 = all online CPUs
	Logger  *slog.Logger // nil = discard
	// ISA caps the kernel path: "" = the best this CPU supports (CPUID + OS), itself capped by the
	// environment variable TDXL_MAX_ISA; or one of "amx", "avx512bf16", "avx512", "avx2" (capped to
	// what the CPU supports), or "ref" = the fp32 reference ops (the oracle of the fast ones).
	ISA string
	// Precision of the fast path's resident weights: "" or "bf16" = weights converted once at load
	// to bf16 (half the memory, bf16 tolerances); "fp32" = fp32-resident weights (the reference's
	// tolerances). Ignored by the reference path (always fp32). Env TDXL_PRECISION sets the default.
	Precision string
	// Reserve sizes the activation arena at load for these image sizes, each with up to Batch
	// images per run: Open walks one UNet step and one VAE decode per size with ops that compute
	// nothing, then touches the largest footprint's pages, so that the first image at (or below)
	// those sizes needs no fresh memory. The resident footprint is the largest size's (2.25 GiB at
	// 1024x1024). Empty: the arena grows with the first image at each size.
	Reserve []Size
}

// Size is an image size and the largest batch run at it (Batch 0 means 1).
type Size struct{ Width, Height, Batch int }

// Request is one text-to-image generation.
type Request struct {
	Prompts                     []string // 1 (used for every batch element) or Batch prompts
	Width, Height, Steps, Batch int      // Width/Height multiples of 8; Steps 1..50; Batch 1..MaxBatch
	// Seed of our own platform-independent noise generator (see noise.go), used when InitLatents /
	// StepNoise are not given: the same seed gives the same image on every machine and thread count.
	Seed     int64
	Progress func(done, total int) // called after each denoising step (may be nil)
	// InitLatents, optional: NCHW [Batch][4][Height/8][Width/8] N(0,1) latents; scaled by
	// init_noise_sigma inside, as the reference pipeline does with latents=.
	InitLatents []float32
	// StepNoise, optional: one NCHW tensor per step, the N(0,1) draw of each ancestral step.
	StepNoise [][]float32
}

// Timings are the wall-clock times of the stages of one Generate call.
type Timings struct {
	TextEncoders time.Duration
	UNetSteps    []time.Duration // one per step (UNet + scheduler update)
	VAE          time.Duration
	Total        time.Duration
}

// Result holds Batch images, W×H, alpha 255.
type Result struct {
	Images  []*image.RGBA
	Timings Timings
}

// Info describes an open pipeline.
type Info struct {
	Model   string // model_index name, or "stabilityai/sdxl-turbo"
	ISA     string // kernel path that runs (e.g. "ref-fp32")
	Threads int
}

// Limits of a Request.
const (
	MaxSteps     = 50
	MaxBatch     = 16
	MaxImageSide = 2048
	// MaxPixels bounds Batch×Width×Height (the VAE's activations grow with it): 4 images of 1024².
	MaxPixels = 4 * 1024 * 1024
)

// Errors callers may branch on (errors.Is).
var (
	ErrClosed     = errors.New("kernels: pipeline closed")
	ErrBadRequest = errors.New("kernels: bad request")
)

// Pipeline is an open model. Generate calls are serialised; Close is idempotent.
type Pipeline struct {
	mu     sync.Mutex
	h      *handle // nil once closed
	info   Info
	log    *slog.Logger
	m      *pipeModel
	closed bool
}

// ActivationStats counts the pipeline's activation memory since Open: every intermediate tensor
// is a block of a per-pipeline arena whose pages, once touched, are reused by every later image, so
// after the first image at the largest size asked for, generating maps and faults in nothing.
type ActivationStats struct {
	Requests  uint64 // blocks asked for
	NewBlocks uint64 // requests that needed memory never used before (the rest reused the arena's)
	PeakBytes uint64 // the arena's footprint: high-water mark of its resident memory
}

// ActivationStats returns the counters (zero after Close).
func (p *Pipeline) ActivationStats() ActivationStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.h == nil {
		return ActivationStats{}
	}
	return p.h.arenaStats()
}

// Info returns the model name, kernel path and thread count.
func (p *Pipeline) Info() Info { return p.info }

// Close releases the C++ model; calling it again is a no-op. It waits for a running Generate.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.h != nil {
		p.h.free()
		p.h = nil
	}
	return nil
}

func badRequest(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
}

// Generate runs the text encoders, Steps Euler-ancestral UNet steps and the VAE decoder. A
// cancelled ctx stops the work at the next layer boundary and returns an error wrapping ctx.Err().
func (p *Pipeline) Generate(ctx context.Context, req Request) (*Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.h == nil {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kernels: generate: %w", err)
	}
	stop := p.watch(ctx)
	res, err := p.generate(ctx, req)
	stop()
	if err != nil {
		if errors.Is(err, errCancelled) || ctx.Err() != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, fmt.Errorf("kernels: generate: %w", cerr)
			}
		}
		return nil, fmt.Errorf("kernels: generate: %w", err)
	}
	return res, nil
}

// watch sets the C++ cancel flag when ctx is done; the returned func stops watching and re-arms.
func (p *Pipeline) watch(ctx context.Context) func() {
	done := make(chan struct{})
	exited := make(chan struct{})
	h := p.h
	go func() {
		defer close(exited)
		select {
		case <-ctx.Done():
			h.cancel(true)
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-exited
		h.cancel(false)
	}
}
