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

func (p *Pipeline) generate(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	if err := p.validate(&req); err != nil {
		return nil, err
	}
	m := p.m
	B, T := req.Batch, m.textLen
	lh, lw := req.Height/m.vaeScale, req.Width/m.vaeScale
	var tm Timings

	t0 := time.Now()
	ids1, ids2, err := p.tokenize(&req)
	if err != nil {
		return nil, err
	}
	embeds := make([]float32, B*T*m.crossDim)
	pooled := make([]float32, B*m.pooledDim)
	if err := p.h.encodePrompt(ids1, ids2, B, T, embeds, pooled); err != nil {
		return nil, fmt.Errorf("text encoders: %w", err)
	}
	tm.TextEncoders = time.Since(t0)

	ts, sigmas, initSigma, _, _, err := schedTablesGo(&m.sched, req.Steps)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	n := B * m.latentChannels * lh * lw
	latents := req.InitLatents
	if latents == nil {
		latents = NormalNoise(req.Seed, 0, n)
	}
	x := make([]float32, n)
	for i, v := range latents {
		x[i] = v * initSigma
	}
	timeIDs := make([]float32, 0, 6*B)
	for b := 0; b < B; b++ {
		h, w := float32(req.Height), float32(req.Width)
		timeIDs = append(timeIDs, h, w, 0, 0, h, w)
	}
	for i := 0; i < req.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ts0 := time.Now()
		var noise []float32
		if req.StepNoise != nil {
			noise = req.StepNoise[i]
		} else {
			noise = NormalNoise(req.Seed, uint32(i+1), n)
		}
		if err := p.h.denoiseStep(x, B, lh, lw, ts[i], sigmas[i], sigmas[i+1], noise, embeds, T, pooled, timeIDs,
			m.sched.Predict, nil, nil); err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		tm.UNetSteps = append(tm.UNetSteps, time.Since(ts0))
		if req.Progress != nil {
			req.Progress(i+1, req.Steps)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tv := time.Now()
	decoded := make([]float32, B*3*req.Height*req.Width)
	if err := p.h.vaeDecode(x, B, lh, lw, nil, decoded); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	rgba := make([]byte, B*req.Height*req.Width*4)
	postprocess(decoded, B, req.Height, req.Width, nil, rgba)
	tm.VAE = time.Since(tv)
	res := &Result{}
	per := req.Height * req.Width * 4
	for b := 0; b < B; b++ {
		res.Images = append(res.Images, &image.RGBA{
			Pix:    rgba[b*per : (b+1)*per : (b+1)*per],
			Stride: 4 * req.Width,
			Rect:   image.Rect(0, 0, req.Width, req.Height),
		})
	}
	tm.Total = time.Since(start)
	res.Timings = tm
	p.log.Debug("generated", "batch", B, "width", req.Width, "height", req.Height, "steps", req.Steps,
		"total", tm.Total)
	return res, nil
}
