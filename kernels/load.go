package kernels

/*
#include "tdxl_capi.h"
*/
import "C"

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"time"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/safetensors"
)

// Open loads a diffusers folder laid out like stabilityai/sdxl-turbo: configs and strict weights
// through package model (errors name the file and tensor), tokenizers through package tokenizer,
// then converts every weight to fp32 and packs it once into the C++ core. The safetensors files
// are closed before Open returns.
func Open(dir string, opts Options) (*Pipeline, error) {
	p, cfg, err := openCore(dir, opts)
	if err != nil {
		return nil, err
	}
	if p.m.tok1, p.m.tok2, err = loadTokenizers(cfg); err != nil {
		p.Close()
		return nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	if err := p.reserve(opts.Reserve); err != nil {
		p.Close()
		return nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	return p, nil
}

// reserve sizes the activation arena for each size (Options.Reserve).
func (p *Pipeline) reserve(sizes []Size) error {
	for _, s := range sizes {
		b := s.Batch
		if b == 0 {
			b = 1
		}
		sc := p.m.vaeScale
		if s.Width <= 0 || s.Height <= 0 || s.Width%sc != 0 || s.Height%sc != 0 || b < 1 || b > MaxBatch {
			return fmt.Errorf("reserve %dx%d batch %d: sizes must be positive multiples of %d, batch 1..%d",
				s.Width, s.Height, s.Batch, sc, MaxBatch)
		}
		t0 := time.Now()
		if err := p.h.reserve(b, s.Height/sc, s.Width/sc, p.m.textLen); err != nil {
			return fmt.Errorf("reserve %dx%d batch %d: %w", s.Width, s.Height, b, err)
		}
		st := p.h.arenaStats()
		p.log.Info("activation arena reserved", "width", s.Width, "height", s.Height, "batch", b,
			"footprint_bytes", st.PeakBytes, "took", time.Since(t0))
	}
	return nil
}

// openCore loads configs and weights into the C++ core (everything but the tokenizers).
func openCore(dir string, opts Options) (*Pipeline, *model.Config, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Threads < 0 {
		return nil, nil, fmt.Errorf("kernels: open: threads %d < 0", opts.Threads)
	}
	start := time.Now()
	m, err := model.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	defer m.Close()
	pm, ccfg, err := convertConfig(m.Config, opts.Threads)
	if err != nil {
		return nil, nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	level, resident, err := kernelPath(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	ccfg.isa_level = C.int(level)
	ccfg.resident = C.int(resident)
	h, err := newHandle(ccfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	comps := []*model.Component{m.TextEncoder, m.TextEncoder2, m.UNet, m.VAE}
	for ci, c := range comps {
		if err := feedComponent(h, ci, c, log); err != nil {
			h.free()
			return nil, nil, fmt.Errorf("kernels: open %s: %w", dir, err)
		}
	}
	if err := h.finish(); err != nil {
		h.free()
		return nil, nil, fmt.Errorf("kernels: open %s: %w", dir, err)
	}
	name := m.Config.Name
	if name == "" {
		name = "stabilityai/sdxl-turbo"
	}
	p := &Pipeline{h: h, m: pm, log: log, info: Info{Model: name, ISA: h.kernelPath(), Threads: h.threads()}}
	log.Info("model loaded", "dir", dir, "threads", p.info.Threads, "kernel_path", p.info.ISA,
		"load_time", time.Since(start))
	return p, m.Config, nil
}

var dtypeCodes = map[safetensors.DType]int{
	safetensors.F32: C.TDXL_F32, safetensors.F16: C.TDXL_F16, safetensors.BF16: C.TDXL_BF16, safetensors.F64: C.TDXL_F64,
}

func feedComponent(h *handle, ci int, c *model.Component, log *slog.Logger) error {
	names := make([]string, 0, len(c.Tensors))
	for n := range c.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	unused := 0
	for _, n := range names {
		t := c.Tensors[n]
		code, ok := dtypeCodes[t.DType]
		if !ok {
			return fmt.Errorf("%s: tensor %s: unsupported dtype %s", c.Name, n, t.DType)
		}
		used, err := h.setTensor(ci, n, code, t.Shape, t.Data)
		if err != nil {
			return err
		}
		releasePages(t.Data)
		if !used {
			unused++
		}
	}
	runtime.KeepAlive(c)
	log.Debug("component loaded", "component", c.Name, "tensors", len(names), "unused", unused)
	return nil
}

// convertConfig maps model's configs onto the C structs, refusing what the core does not implement.
func convertConfig(cfg *model.Config, threads int) (*pipeModel, *C.tdxl_pipe_config, error) {
	var cc C.tdxl_pipe_config
	cc.threads = C.int(threads)
	if err := clipConfig(&cc.te1, &cfg.TextEncoder, false); err != nil {
		return nil, nil, fmt.Errorf("text_encoder: %w", err)
	}
	if err := clipConfig(&cc.te2, &cfg.TextEncoder2, true); err != nil {
		return nil, nil, fmt.Errorf("text_encoder_2: %w", err)
	}
	if err := unetConfig(&cc.unet, &cfg.UNet); err != nil {
		return nil, nil, fmt.Errorf("unet: %w", err)
	}
	v := &cfg.VAE
	nb := len(v.BlockOutChannels)
	if nb > C.TDXL_MAX_BLOCKS {
		return nil, nil, fmt.Errorf("vae: %d blocks, at most %d supported", nb, C.TDXL_MAX_BLOCKS)
	}
	cc.vae.latent_channels = C.int(v.LatentChannels)
	cc.vae.out_channels = C.int(v.OutChannels)
	cc.vae.n_blocks = C.int(nb)
	for i, ch := range v.BlockOutChannels {
		cc.vae.block_out[i] = C.int(ch)
	}
	cc.vae.layers_per_block = C.int(v.LayersPerBlock)
	cc.vae.norm_groups = C.int(v.NormNumGroups)
	cc.vae.scaling_factor = C.float(v.ScalingFactor)
	if !v.UsePostQuantConv {
		return nil, nil, fmt.Errorf("vae: use_post_quant_conv false is not supported")
	}
	sc, err := schedFromConfig(&cfg.Scheduler)
	if err != nil {
		return nil, nil, fmt.Errorf("scheduler: %w", err)
	}
	u := &cfg.UNet
	pm := &pipeModel{
		sched:          sc,
		textLen:        cfg.TextEncoder.MaxPositionEmbeddings,
		crossDim:       cfg.TextEncoder.HiddenSize + cfg.TextEncoder2.HiddenSize,
		pooledDim:      cfg.TextEncoder2.ProjectionDim,
		latentChannels: u.InChannels,
		vaeScale:       1 << (nb - 1),
		vaeScaling:     v.ScalingFactor,
	}
	for i, c := range []*model.CLIPTextConfig{&cfg.TextEncoder, &cfg.TextEncoder2} {
		pm.clip[i].D, pm.clip[i].L, pm.clip[i].P = c.HiddenSize, c.NumHiddenLayers, c.ProjectionDim
	}
	switch {
	case cfg.TextEncoder2.MaxPositionEmbeddings != pm.textLen:
		return nil, nil, fmt.Errorf("text encoders disagree on max_position_embeddings")
	case u.CrossAttentionDimMax() != pm.crossDim:
		return nil, nil, fmt.Errorf("unet cross_attention_dim %d != text hidden sizes %d", u.CrossAttentionDimMax(), pm.crossDim)
	case u.ProjectionClassEmbeddingsInputDim != pm.pooledDim+6*u.AdditionTimeEmbedDim:
		return nil, nil, fmt.Errorf("unet projection_class_embeddings_input_dim %d != %d + 6*%d",
			u.ProjectionClassEmbeddingsInputDim, pm.pooledDim, u.AdditionTimeEmbedDim)
	case v.LatentChannels != u.InChannels || u.OutChannels != u.InChannels:
		return nil, nil, fmt.Errorf("latent channels disagree (vae %d, unet in %d out %d)", v.LatentChannels, u.InChannels, u.OutChannels)
	}
	return pm, &cc, nil
}

func clipConfig(c *C.tdxl_clip_config, g *model.CLIPTextConfig, withProj bool) error {
	c.vocab_size = C.int64_t(g.VocabSize)
	c.hidden_size = C.int64_t(g.HiddenSize)
	c.intermediate_size = C.int64_t(g.IntermediateSize)
	c.num_layers = C.int64_t(g.NumHiddenLayers)
	c.num_heads = C.int64_t(g.NumAttentionHeads)
	c.max_positions = C.int64_t(g.MaxPositionEmbeddings)
	c.projection_dim = C.int64_t(g.ProjectionDim)
	c.eps = C.float(g.LayerNormEps)
	switch g.HiddenAct {
	case "quick_gelu":
		c.act = C.TDXL_ACT_QUICK_GELU
	case "gelu":
		c.act = C.TDXL_ACT_GELU
	default:
		return fmt.Errorf("hidden_act %q not supported", g.HiddenAct)
	}
	if withProj {
		c.with_projection = 1
	}
	if !g.PoolByArgmax() {
		return fmt.Errorf("eos_token_id %d: only the argmax pooling of eos_token_id 2 is implemented", g.EOSTokenID)
	}
	return nil
}

func unetConfig(c *C.tdxl_unet_config, u *model.UNetConfig) error {
	l, err := u.Layout()
	if err != nil {
		return err
	}
	n := len(u.BlockOutChannels)
	switch {
	case n > C.TDXL_MAX_BLOCKS:
		return fmt.Errorf("%d blocks, at most %d supported", n, C.TDXL_MAX_BLOCKS)
	case !u.UseLinearProjection:
		return fmt.Errorf("use_linear_projection false is not supported")
	case u.CenterInputSample:
		return fmt.Errorf("center_input_sample is not supported")
	case u.AdditionEmbedType != "text_time":
		return fmt.Errorf("addition_embed_type %q not supported (need text_time)", u.AdditionEmbedType)
	case u.ResnetOutScaleFactor != 1 || u.MidBlockScaleFactor != 1 || u.DownsamplePadding != 1:
		return fmt.Errorf("resnet_out_scale_factor, mid_block_scale_factor and downsample_padding must be 1")
	case u.UpcastAttention:
		return fmt.Errorf("upcast_attention is not supported")
	case l.TimeEmbedDim != 4*u.BlockOutChannels[0]:
		return fmt.Errorf("time_embedding_dim %d not supported (need 4*block_out_channels[0])", l.TimeEmbedDim)
	}
	c.in_channels = C.int(u.InChannels)
	c.out_channels = C.int(u.OutChannels)
	c.n_blocks = C.int(n)
	lpb := len(l.Down[0].Resnets)
	for i := 0; i < n; i++ {
		d, up := l.Down[i], l.Up[i]
		if len(d.Resnets) != lpb || len(up.Resnets) != lpb+1 {
			return fmt.Errorf("per-block layers_per_block is not supported")
		}
		if d.Attentions > 0 && d.CrossAttentionDim != u.CrossAttentionDimMax() {
			return fmt.Errorf("per-block cross_attention_dim is not supported")
		}
		c.block_out[i] = C.int(u.BlockOutChannels[i])
		c.down_cross[i] = C.int(b2i(d.Attentions > 0))
		c.up_cross[i] = C.int(b2i(up.Attentions > 0))
		c.heads[i] = C.int(d.Heads)
		c.transformer_layers[i] = C.int(d.TransformerLayers)
		if d.Attentions == 0 { // heads/layers still needed if the mirrored up block has attention
			ri := n - 1 - i
			c.heads[i] = C.int(l.Up[ri].Heads)
			c.transformer_layers[i] = C.int(l.Up[ri].TransformerLayers)
		}
	}
	c.mid_cross = 1
	c.heads[n-1] = C.int(l.Mid.Heads)
	c.transformer_layers[n-1] = C.int(l.Mid.TransformerLayers)
	c.layers_per_block = C.int(lpb)
	c.cross_attention_dim = C.int(u.CrossAttentionDimMax())
	c.norm_groups = C.int(u.NormNumGroups)
	c.norm_eps = C.float(u.NormEps)
	c.flip_sin_to_cos = C.int(b2i(u.FlipSinToCos))
	c.freq_shift = C.float(u.FreqShift)
	c.addition_time_embed_dim = C.int(u.AdditionTimeEmbedDim)
	c.projection_class_embeddings_input_dim = C.int(u.ProjectionClassEmbeddingsInputDim)
	c.conv_in_kernel = C.int(u.ConvInKernel)
	c.conv_out_kernel = C.int(u.ConvOutKernel)
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func schedFromConfig(s *model.SchedulerConfig) (schedConfig, error) {
	sc := schedConfig{NumTrain: s.NumTrainTimesteps, BetaStart: s.BetaStart, BetaEnd: s.BetaEnd,
		StepsOffset: s.StepsOffset}
	if s.TrainedBetas != nil || s.RescaleBetasZeroSNR {
		return sc, fmt.Errorf("trained_betas / rescale_betas_zero_snr are not supported")
	}
	switch s.BetaSchedule {
	case "linear":
		sc.Schedule = C.TDXL_BETAS_LINEAR
	case "scaled_linear":
		sc.Schedule = C.TDXL_BETAS_SCALED_LINEAR
	default:
		return sc, fmt.Errorf("beta_schedule %q not supported", s.BetaSchedule)
	}
	switch s.TimestepSpacing {
	case "trailing":
		sc.Spacing = C.TDXL_SPACING_TRAILING
	case "leading":
		sc.Spacing = C.TDXL_SPACING_LEADING
	case "linspace":
		sc.Spacing = C.TDXL_SPACING_LINSPACE
	default:
		return sc, fmt.Errorf("timestep_spacing %q not supported", s.TimestepSpacing)
	}
	switch s.PredictionType {
	case "epsilon":
		sc.Predict = C.TDXL_PRED_EPSILON
	case "v_prediction":
		sc.Predict = C.TDXL_PRED_V
	default:
		return sc, fmt.Errorf("prediction_type %q not supported", s.PredictionType)
	}
	return sc, nil
}

// Scheduler enum values for Go code without cgo types.
const (
	schedLinear       = C.TDXL_BETAS_LINEAR
	schedScaledLinear = C.TDXL_BETAS_SCALED_LINEAR
	schedLeading      = C.TDXL_SPACING_LEADING
	schedTrailing     = C.TDXL_SPACING_TRAILING
	schedLinspace     = C.TDXL_SPACING_LINSPACE
)

// schedTablesGo computes timesteps, sigmas, init_noise_sigma, alphas_cumprod and training sigmas.
func schedTablesGo(s *schedConfig, steps int) (ts, sigmas []float32, init float32, ac, trainSigmas []float32, err error) {
	var c C.tdxl_sched_config
	c.num_train_timesteps = C.int(s.NumTrain)
	c.beta_start = C.double(s.BetaStart)
	c.beta_end = C.double(s.BetaEnd)
	c.beta_schedule = C.int(s.Schedule)
	c.spacing = C.int(s.Spacing)
	c.steps_offset = C.int(s.StepsOffset)
	c.prediction = C.int(s.Predict)
	return schedTables(&c, steps, s.NumTrain)
}
