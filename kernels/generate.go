package kernels

import (
	"context"
	"fmt"
	"image"
	"time"
)

// textTokenizer is what Generate needs of package tokenizer.
type textTokenizer interface {
	Encode(prompt string) []int64
}

// schedConfig mirrors tdxl_sched_config (converted in cgo.go).
type schedConfig struct {
	NumTrain             int
	BetaStart, BetaEnd   float64
	Schedule, Spacing    int
	StepsOffset, Predict int
}

// pipeModel holds the Go-side parts of an open model and the dimensions Generate needs.
type pipeModel struct {
	tok1, tok2     textTokenizer
	sched          schedConfig
	textLen        int // 77
	crossDim       int // hidden1 + hidden2
	pooledDim      int // text_encoder_2 projection_dim
	latentChannels int
	vaeScale       int // 2^(len(vae block_out_channels)-1)
	vaeScaling     float64
	clip           [2]struct{ D, L, P int } // hidden size, layers, projection dim per text encoder
}

func (p *Pipeline) validate(req *Request) error {
	m := p.m
	switch {
	case req.Batch < 1 || req.Batch > MaxBatch:
		return badRequest("batch %d not in [1, %d]", req.Batch, MaxBatch)
	case req.Steps < 1 || req.Steps > MaxSteps:
		return badRequest("steps %d not in [1, %d]", req.Steps, MaxSteps)
	case req.Width < m.vaeScale || req.Width > MaxImageSide || req.Width%m.vaeScale != 0:
		return badRequest("width %d: must be a multiple of %d in [%d, %d]", req.Width, m.vaeScale, m.vaeScale, MaxImageSide)
	case req.Height < m.vaeScale || req.Height > MaxImageSide || req.Height%m.vaeScale != 0:
		return badRequest("height %d: must be a multiple of %d in [%d, %d]", req.Height, m.vaeScale, m.vaeScale, MaxImageSide)
	case req.Batch*req.Width*req.Height > MaxPixels:
		return badRequest("batch %d of %dx%d exceeds %d pixels per request", req.Batch, req.Width, req.Height, MaxPixels)
	case len(req.Prompts) != 1 && len(req.Prompts) != req.Batch:
		return badRequest("%d prompts for batch %d (want 1 or %d)", len(req.Prompts), req.Batch, req.Batch)
	}
	n := req.Batch * m.latentChannels * (req.Height / m.vaeScale) * (req.Width / m.vaeScale)
	if req.InitLatents != nil && len(req.InitLatents) != n {
		return badRequest("InitLatents has %d values, want %d", len(req.InitLatents), n)
	}
	if req.StepNoise != nil {
		if len(req.StepNoise) != req.Steps {
			return badRequest("StepNoise has %d tensors, want %d", len(req.StepNoise), req.Steps)
		}
		for i, s := range req.StepNoise {
			if len(s) != n {
				return badRequest("StepNoise[%d] has %d values, want %d", i, len(s), n)
			}
		}
	}
	return nil
}

// tokenize returns the ids of both tokenizers for each batch element ([B][textLen] each).
func (p *Pipeline) tokenize(req *Request) (ids1, ids2 []int64, err error) {
	T := p.m.textLen
	for b := 0; b < req.Batch; b++ {
		prompt := req.Prompts[0]
		if len(req.Prompts) > 1 {
			prompt = req.Prompts[b]
		}
		a, c := p.m.tok1.Encode(prompt), p.m.tok2.Encode(prompt)
		if len(a) != T || len(c) != T {
			return nil, nil, fmt.Errorf("tokenizer returned %d/%d ids, want %d", len(a), len(c), T)
		}
		ids1 = append(ids1, a...)
		ids2 = append(ids2, c...)
	}
	return ids1, ids2, nil
}

// conditioning is what every UNet call of one Generate shares.
type conditioning struct {
	embeds, pooled, timeIDs []float32
}

func (p *Pipeline) encode(req *Request) (*conditioning, error) {
	m := p.m
	ids1, ids2, err := p.tokenize(req)
	if err != nil {
		return nil, err
	}
	c := &conditioning{
		embeds: make([]float32, req.Batch*m.textLen*m.crossDim),
		pooled: make([]float32, req.Batch*m.pooledDim),
	}
	// One prompt for the whole batch (the seed API's case): encode it once and copy the rows; the
	// encoders treat batch rows independently, so the result is the same as encoding B copies.
	enc := req.Batch
	if len(req.Prompts) == 1 {
		enc = 1
		ids1, ids2 = ids1[:m.textLen], ids2[:m.textLen]
	}
	if err := p.h.encodePrompt(ids1, ids2, enc, m.textLen, c.embeds[:enc*m.textLen*m.crossDim], c.pooled[:enc*m.pooledDim]); err != nil {
		return nil, fmt.Errorf("text encoders: %w", err)
	}
	for b := enc; b < req.Batch; b++ {
		copy(c.embeds[b*m.textLen*m.crossDim:(b+1)*m.textLen*m.crossDim], c.embeds[:m.textLen*m.crossDim])
		copy(c.pooled[b*m.pooledDim:(b+1)*m.pooledDim], c.pooled[:m.pooledDim])
	}
	for b := 0; b < req.Batch; b++ { // [orig_h, orig_w, crop_top, crop_left, target_h, target_w]
		h, w := float32(req.Height), float32(req.Width)
		c.timeIDs = append(c.timeIDs, h, w, 0, 0, h, w)
	}
	return c, nil
}

// denoise runs the Euler-ancestral loop and returns the final latents.
func (p *Pipeline) denoise(ctx context.Context, req *Request, c *conditioning, tm *Timings) ([]float32, error) {
	m := p.m
	lh, lw := req.Height/m.vaeScale, req.Width/m.vaeScale
	ts, sigmas, initSigma, _, _, err := schedTablesGo(&m.sched, req.Steps)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	n := req.Batch * m.latentChannels * lh * lw
	latents := req.InitLatents
	if latents == nil {
		latents = NormalNoise(req.Seed, 0, n)
	}
	x := make([]float32, n)
	for i, v := range latents {
		x[i] = v * initSigma
	}
	for i := 0; i < req.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		var noise []float32
		if req.StepNoise != nil {
			noise = req.StepNoise[i]
		} else {
			noise = NormalNoise(req.Seed, uint32(i+1), n)
		}
		if err := p.h.denoiseStep(x, req.Batch, lh, lw, ts[i], sigmas[i], sigmas[i+1], noise, c.embeds, m.textLen,
			c.pooled, c.timeIDs, m.sched.Predict, nil, nil); err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		tm.UNetSteps = append(tm.UNetSteps, time.Since(t0))
		if req.Progress != nil {
			req.Progress(i+1, req.Steps)
		}
	}
	return x, nil
}

// decode runs the VAE and converts to 8-bit RGBA images.
func (p *Pipeline) decode(req *Request, x []float32) ([]*image.RGBA, error) {
	B, H, W := req.Batch, req.Height, req.Width
	decoded := make([]float32, B*3*H*W)
	if err := p.h.vaeDecode(x, B, H/p.m.vaeScale, W/p.m.vaeScale, nil, decoded); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	rgba := make([]byte, B*H*W*4)
	postprocess(decoded, B, H, W, nil, rgba)
	per := H * W * 4
	images := make([]*image.RGBA, B)
	for b := range images {
		images[b] = &image.RGBA{Pix: rgba[b*per : (b+1)*per : (b+1)*per], Stride: 4 * W, Rect: image.Rect(0, 0, W, H)}
	}
	return images, nil
}

func (p *Pipeline) generate(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	if err := p.validate(&req); err != nil {
		return nil, err
	}
	res := &Result{}
	tm := &res.Timings
	t0 := time.Now()
	cond, err := p.encode(&req)
	if err != nil {
		return nil, err
	}
	tm.TextEncoders = time.Since(t0)
	x, err := p.denoise(ctx, &req, cond, tm)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t0 = time.Now()
	if res.Images, err = p.decode(&req, x); err != nil {
		return nil, err
	}
	tm.VAE = time.Since(t0)
	tm.Total = time.Since(start)
	p.log.Debug("generated", "batch", req.Batch, "width", req.Width, "height", req.Height, "steps", req.Steps,
		"total", tm.Total)
	return res, nil
}
