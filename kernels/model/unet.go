package model

import (
	"encoding/json"
	"fmt"
)

// UNetConfig is a diffusers UNet2DConditionModel config (unet/config.json).
// Defaults are diffusers 0.26's for absent (or null) keys. Features SDXL does
// not use (class embeddings, encoder_hid_proj, dual cross-attention, scale-shift
// time conditioning, ...) are rejected by validation rather than ignored.
type UNetConfig struct {
	SampleSize                        int      `json:"sample_size"`         // latent size the model was trained at (informational)
	InChannels                        int      `json:"in_channels"`         // default 4
	OutChannels                       int      `json:"out_channels"`        // default 4
	CenterInputSample                 bool     `json:"center_input_sample"` // default false: if true, input is 2*x-1
	FlipSinToCos                      bool     `json:"flip_sin_to_cos"`     // default true
	FreqShift                         float64  `json:"freq_shift"`          // default 0
	DownBlockTypes                    []string `json:"down_block_types"`    // DownBlock2D / CrossAttnDownBlock2D
	MidBlockType                      string   `json:"mid_block_type"`      // UNetMidBlock2DCrossAttn
	UpBlockTypes                      []string `json:"up_block_types"`      // UpBlock2D / CrossAttnUpBlock2D
	BlockOutChannels                  []int    `json:"block_out_channels"`  // default [320, 640, 1280, 1280]
	LayersPerBlock                    IntList  `json:"layers_per_block"`    // default 2 (down blocks; up blocks have one more)
	DownsamplePadding                 int      `json:"downsample_padding"`  // default 1
	MidBlockScaleFactor               float64  `json:"mid_block_scale_factor"`
	ActFn                             string   `json:"act_fn"`          // "silu"
	NormNumGroups                     int      `json:"norm_num_groups"` // default 32
	NormEps                           float64  `json:"norm_eps"`        // default 1e-5 (resnets, conv_norm_out)
	CrossAttentionDim                 IntList  `json:"cross_attention_dim"`
	TransformerLayersPerBlock         IntList  `json:"transformer_layers_per_block"` // default 1
	AttentionHeadDim                  IntList  `json:"attention_head_dim"`           // default 8; = NUMBER OF HEADS (diffusers naming)
	NumAttentionHeads                 IntList  `json:"num_attention_heads"`          // default null: attention_head_dim is used
	UseLinearProjection               bool     `json:"use_linear_projection"`        // default false (then proj_in/out are 1x1 convs)
	AdditionEmbedType                 string   `json:"addition_embed_type"`          // null or "text_time"
	AdditionTimeEmbedDim              int      `json:"addition_time_embed_dim"`
	ProjectionClassEmbeddingsInputDim int      `json:"projection_class_embeddings_input_dim"`
	UpcastAttention                   bool     `json:"upcast_attention"`
	ResnetOutScaleFactor              float64  `json:"resnet_out_scale_factor"` // default 1.0
	TimeEmbeddingType                 string   `json:"time_embedding_type"`     // "positional"
	TimeEmbeddingDim                  int      `json:"time_embedding_dim"`      // default null: 4*block_out_channels[0]
	ConvInKernel                      int      `json:"conv_in_kernel"`          // default 3
	ConvOutKernel                     int      `json:"conv_out_kernel"`         // default 3
	ResnetTimeScaleShift              string   `json:"resnet_time_scale_shift"` // "default"
	AttentionType                     string   `json:"attention_type"`          // "default"

	// Keys that must be null / false / absent (features we do not implement).
	OnlyCrossAttention               json.RawMessage `json:"only_cross_attention"`
	MidBlockOnlyCrossAttention       json.RawMessage `json:"mid_block_only_cross_attention"`
	DualCrossAttention               bool            `json:"dual_cross_attention"`
	ClassEmbedType                   json.RawMessage `json:"class_embed_type"`
	NumClassEmbeds                   json.RawMessage `json:"num_class_embeds"`
	ClassEmbeddingsConcat            bool            `json:"class_embeddings_concat"`
	EncoderHidDim                    json.RawMessage `json:"encoder_hid_dim"`
	EncoderHidDimType                json.RawMessage `json:"encoder_hid_dim_type"`
	TimeCondProjDim                  json.RawMessage `json:"time_cond_proj_dim"`
	TimeEmbeddingActFn               json.RawMessage `json:"time_embedding_act_fn"`
	TimestepPostAct                  json.RawMessage `json:"timestep_post_act"`
	CrossAttentionNorm               json.RawMessage `json:"cross_attention_norm"`
	ResnetSkipTimeAct                bool            `json:"resnet_skip_time_act"`
	ReverseTransformerLayersPerBlock json.RawMessage `json:"reverse_transformer_layers_per_block"`
}

// Constants of diffusers' modules that are not in config.json.
const (
	UNetTransformerGroupNormEps = 1e-6 // Transformer2DModel.norm
	UNetTransformerLayerNormEps = 1e-5 // BasicTransformerBlock norm1..3
	UNetFeedForwardMult         = 4    // GEGLU inner width = 4 * dim
)

func (c *UNetConfig) setDefaults() {
	*c = UNetConfig{
		InChannels: 4, OutChannels: 4, FlipSinToCos: true,
		DownBlockTypes:    []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		MidBlockType:      "UNetMidBlock2DCrossAttn",
		UpBlockTypes:      []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
		BlockOutChannels:  []int{320, 640, 1280, 1280},
		LayersPerBlock:    IntList{2},
		DownsamplePadding: 1, MidBlockScaleFactor: 1, ActFn: "silu", NormNumGroups: 32, NormEps: 1e-5,
		CrossAttentionDim: IntList{1280}, TransformerLayersPerBlock: IntList{1}, AttentionHeadDim: IntList{8},
		ResnetOutScaleFactor: 1, TimeEmbeddingType: "positional", ConvInKernel: 3, ConvOutKernel: 3,
		ResnetTimeScaleShift: "default", AttentionType: "default",
	}
}

// UNetResnet is one ResnetBlock2D: norm1(In) conv1(In→Out) time_emb_proj
// norm2(Out) conv2(Out→Out), plus conv_shortcut (1x1, In→Out) when In != Out.
type UNetResnet struct{ In, Out int }

// UNetBlock is one down, mid or up block as diffusers builds it.
type UNetBlock struct {
	Type       string
	Out        int          // output channels
	Resnets    []UNetResnet // in order
	Attentions int          // Transformer2DModels: one after each resnet (down/up), one between the two resnets (mid)
	// Transformer2DModel parameters (when Attentions > 0): inner dim = Heads*HeadDim = Out.
	Heads, HeadDim, TransformerLayers, CrossAttentionDim int
	Downsample                                           bool // down blocks: a stride-2 3x3 conv (padding DownsamplePadding) at the end
	Upsample                                             bool // up blocks: nearest 2x upsampling + 3x3 conv at the end
}

// UNetLayout is the block structure derived from a UNetConfig; Spec and the
// inference core both walk it.
type UNetLayout struct {
	TimeEmbedDim int // width of the time embedding (time_embedding.linear_*; resnets' time_emb_proj input)
	Down         []UNetBlock
	Mid          UNetBlock
	Up           []UNetBlock
}

func isOff(raw json.RawMessage) bool {
	s := string(raw)
	return s == "" || s == "null" || s == "false"
}

// validate checks that the config describes a UNet we implement, with sane sizes.
func (c *UNetConfig) validate() error {
	if err := c.validateFeatures(); err != nil {
		return err
	}
	_, err := c.Layout() // validateSizes + per-block consistency
	return err
}

// validateFeatures refuses diffusers features the inference core does not implement.
func (c *UNetConfig) validateFeatures() error {
	off := map[string]json.RawMessage{
		"only_cross_attention": c.OnlyCrossAttention, "mid_block_only_cross_attention": c.MidBlockOnlyCrossAttention,
		"class_embed_type": c.ClassEmbedType, "num_class_embeds": c.NumClassEmbeds, "encoder_hid_dim": c.EncoderHidDim,
		"encoder_hid_dim_type": c.EncoderHidDimType, "time_cond_proj_dim": c.TimeCondProjDim,
		"time_embedding_act_fn": c.TimeEmbeddingActFn, "timestep_post_act": c.TimestepPostAct,
		"cross_attention_norm": c.CrossAttentionNorm, "reverse_transformer_layers_per_block": c.ReverseTransformerLayersPerBlock,
	}
	for k, v := range off {
		if !isOff(v) {
			return fmt.Errorf("%w: %s = %s", ErrUnsupported, k, v)
		}
	}
	switch {
	case c.DualCrossAttention || c.ClassEmbeddingsConcat || c.ResnetSkipTimeAct:
		return fmt.Errorf("%w: dual_cross_attention / class_embeddings_concat / resnet_skip_time_act", ErrUnsupported)
	case c.ActFn != "silu":
		return fmt.Errorf("%w: act_fn %q", ErrUnsupported, c.ActFn)
	case c.MidBlockType != "UNetMidBlock2DCrossAttn":
		return fmt.Errorf("%w: mid_block_type %q", ErrUnsupported, c.MidBlockType)
	case c.AdditionEmbedType != "" && c.AdditionEmbedType != "text_time":
		return fmt.Errorf("%w: addition_embed_type %q", ErrUnsupported, c.AdditionEmbedType)
	case c.TimeEmbeddingType != "positional":
		return fmt.Errorf("%w: time_embedding_type %q", ErrUnsupported, c.TimeEmbeddingType)
	case c.ResnetTimeScaleShift != "default":
		return fmt.Errorf("%w: resnet_time_scale_shift %q", ErrUnsupported, c.ResnetTimeScaleShift)
	case c.AttentionType != "default":
		return fmt.Errorf("%w: attention_type %q", ErrUnsupported, c.AttentionType)
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownBlock2D" && t != "CrossAttnDownBlock2D" {
			return fmt.Errorf("%w: down_block_types[%d] = %q", ErrUnsupported, i, t)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpBlock2D" && t != "CrossAttnUpBlock2D" {
			return fmt.Errorf("%w: up_block_types[%d] = %q", ErrUnsupported, i, t)
		}
	}
	return nil
}

// validateSizes checks every number against the limits and the structural
// rules (group and even-width constraints).
func (c *UNetConfig) validateSizes() error {
	n := len(c.BlockOutChannels)
	if n == 0 || len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return fmt.Errorf("%w: block_out_channels (%d), down_block_types (%d) and up_block_types (%d) must have the same non-zero length",
			ErrConfig, n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	}
	ranges := []bound{
		{"number of blocks", n, 1, maxBlocks}, {"in_channels", c.InChannels, 1, maxChannels},
		{"out_channels", c.OutChannels, 1, maxChannels}, {"norm_num_groups", c.NormNumGroups, 1, maxChannels},
		{"conv_in_kernel", c.ConvInKernel, 1, maxKernel}, {"conv_out_kernel", c.ConvOutKernel, 1, maxKernel},
		{"time_embedding_dim", c.TimeEmbeddingDim, 0, 4 * maxChannels},
		{"addition_time_embed_dim", c.AdditionTimeEmbedDim, 0, maxChannels},
		{"projection_class_embeddings_input_dim", c.ProjectionClassEmbeddingsInputDim, 0, 16 * maxChannels},
		{"downsample_padding", c.DownsamplePadding, 0, maxKernel},
	}
	for _, ch := range c.BlockOutChannels {
		ranges = append(ranges, bound{"block_out_channels", ch, 1, maxChannels})
	}
	for _, l := range []struct {
		key  string
		vals IntList
		max  int
	}{{"layers_per_block", c.LayersPerBlock, maxLayers}, {"transformer_layers_per_block", c.TransformerLayersPerBlock, maxLayers},
		{"attention_head_dim", c.AttentionHeadDim, maxChannels}, {"num_attention_heads", c.NumAttentionHeads, maxChannels},
		{"cross_attention_dim", c.CrossAttentionDim, maxChannels}} {
		for _, v := range l.vals {
			ranges = append(ranges, bound{l.key, v, 1, l.max})
		}
	}
	for _, r := range ranges {
		if err := checkRange(r.key, r.v, r.lo, r.hi); err != nil {
			return err
		}
	}
	switch {
	case !(c.NormEps > 0):
		return fmt.Errorf("%w: norm_eps must be positive", ErrConfig)
	case c.ConvInKernel%2 == 0 || c.ConvOutKernel%2 == 0:
		return fmt.Errorf("%w: conv_in_kernel / conv_out_kernel must be odd", ErrConfig)
	case c.AdditionEmbedType == "text_time" && (c.AdditionTimeEmbedDim <= 0 || c.AdditionTimeEmbedDim%2 != 0 || c.ProjectionClassEmbeddingsInputDim <= 0):
		return fmt.Errorf("%w: text_time needs an even addition_time_embed_dim and projection_class_embeddings_input_dim", ErrConfig)
	case c.BlockOutChannels[0]%2 != 0:
		return fmt.Errorf("%w: block_out_channels[0] must be even (sinusoidal embedding)", ErrConfig)
	}
	for _, ch := range c.BlockOutChannels {
		if ch%c.NormNumGroups != 0 {
			return fmt.Errorf("%w: block_out_channels %v must be multiples of norm_num_groups %d", ErrConfig, c.BlockOutChannels, c.NormNumGroups)
		}
	}
	return nil
}

// CrossAttentionDimMax is the text-embedding width the UNet expects (the
// largest per-block cross_attention_dim; SDXL has one value).
func (c *UNetConfig) CrossAttentionDimMax() int {
	m := 0
	for _, d := range c.CrossAttentionDim {
		m = max(m, d)
	}
	return m
}

// perBlock holds the per-block values of the list-or-int config keys.
type perBlock struct{ heads, layers, tlayers, cross []int }

func (c *UNetConfig) perBlock() (perBlock, error) {
	n := len(c.BlockOutChannels)
	heads, key := c.NumAttentionHeads, "num_attention_heads" // diffusers: num_attention_heads or attention_head_dim
	if len(heads) == 0 {
		heads, key = c.AttentionHeadDim, "attention_head_dim"
	}
	var p perBlock
	var err error
	for _, x := range []struct {
		dst  *[]int
		l    IntList
		name string
	}{{&p.heads, heads, key}, {&p.layers, c.LayersPerBlock, "layers_per_block"},
		{&p.tlayers, c.TransformerLayersPerBlock, "transformer_layers_per_block"}, {&p.cross, c.CrossAttentionDim, "cross_attention_dim"}} {
		if *x.dst, err = x.l.expand(x.name, n); err != nil {
			return p, err
		}
	}
	for i := 0; i < n; i++ {
		if c.BlockOutChannels[i]%p.heads[i] != 0 {
			return p, fmt.Errorf("%w: block %d: %d channels not divisible by %d heads", ErrConfig, i, c.BlockOutChannels[i], p.heads[i])
		}
	}
	return p, nil
}

// reversed returns v in reverse order (diffusers' up blocks use reversed lists).
func reversed(v []int) []int {
	r := make([]int, len(v))
	for i := range v {
		r[i] = v[len(v)-1-i]
	}
	return r
}

// Layout derives the block structure exactly as diffusers 0.26's
// UNet2DConditionModel.__init__ does. It checks the sizes first, so it is
// safe on any config.
func (c *UNetConfig) Layout() (*UNetLayout, error) {
	if err := c.validateSizes(); err != nil {
		return nil, err
	}
	p, err := c.perBlock()
	if err != nil {
		return nil, err
	}
	n := len(c.BlockOutChannels)
	l := &UNetLayout{TimeEmbedDim: c.TimeEmbeddingDim}
	if l.TimeEmbedDim <= 0 {
		l.TimeEmbedDim = 4 * c.BlockOutChannels[0]
	}
	attn := func(b *UNetBlock, nAttn, heads, tlayers, cross int) {
		b.Attentions, b.Heads, b.HeadDim, b.TransformerLayers, b.CrossAttentionDim = nAttn, heads, b.Out/heads, tlayers, cross
	}
	out := c.BlockOutChannels[0]
	for i, t := range c.DownBlockTypes {
		in := out
		out = c.BlockOutChannels[i]
		b := UNetBlock{Type: t, Out: out, Downsample: i < n-1}
		for j := 0; j < p.layers[i]; j++ {
			b.Resnets = append(b.Resnets, UNetResnet{In: in, Out: out})
			in = out
		}
		if t == "CrossAttnDownBlock2D" {
			attn(&b, p.layers[i], p.heads[i], p.tlayers[i], p.cross[i])
		}
		l.Down = append(l.Down, b)
	}
	last := c.BlockOutChannels[n-1]
	l.Mid = UNetBlock{Type: c.MidBlockType, Out: last, Resnets: []UNetResnet{{last, last}, {last, last}}}
	attn(&l.Mid, 1, p.heads[n-1], p.tlayers[n-1], p.cross[n-1])
	rch, rheads, rlayers, rtl, rcross := reversed(c.BlockOutChannels), reversed(p.heads), reversed(p.layers), reversed(p.tlayers), reversed(p.cross)
	out = rch[0]
	for i, t := range c.UpBlockTypes {
		prev, in := out, rch[min(i+1, n-1)]
		out = rch[i]
		nl := rlayers[i] + 1
		b := UNetBlock{Type: t, Out: out, Upsample: i < n-1}
		for j := 0; j < nl; j++ {
			resIn, skip := out, out
			if j == 0 {
				resIn = prev
			}
			if j == nl-1 {
				skip = in
			}
			b.Resnets = append(b.Resnets, UNetResnet{In: resIn + skip, Out: out})
		}
		if t == "CrossAttnUpBlock2D" {
			attn(&b, nl, rheads[i], rtl[i], rcross[i])
		}
		l.Up = append(l.Up, b)
	}
	return l, nil
}

// Spec lists the UNet's tensors (diffusers checkpoint keys).
func (c *UNetConfig) Spec() []TensorSpec {
	l, err := c.Layout()
	if err != nil {
		return nil // LoadConfig validated the config; a hand-built invalid config has no spec
	}
	var s specList
	c0, ted := c.BlockOutChannels[0], l.TimeEmbedDim
	s.conv("conv_in", c0, c.InChannels, c.ConvInKernel)
	s.linear("time_embedding.linear_1", ted, c0, true)
	s.linear("time_embedding.linear_2", ted, ted, true)
	if c.AdditionEmbedType == "text_time" {
		s.linear("add_embedding.linear_1", ted, c.ProjectionClassEmbeddingsInputDim, true)
		s.linear("add_embedding.linear_2", ted, ted, true)
	}
	for i, b := range l.Down {
		c.blockSpec(&s, fmt.Sprintf("down_blocks.%d.", i), b, ted)
		if b.Downsample {
			s.conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), b.Out, b.Out, 3)
		}
	}
	c.blockSpec(&s, "mid_block.", l.Mid, ted)
	for i, b := range l.Up {
		c.blockSpec(&s, fmt.Sprintf("up_blocks.%d.", i), b, ted)
		if b.Upsample {
			s.conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), b.Out, b.Out, 3)
		}
	}
	s.norm("conv_norm_out", c0)
	s.conv("conv_out", c.OutChannels, c0, c.ConvOutKernel)
	return s.specs
}

func (c *UNetConfig) blockSpec(s *specList, p string, b UNetBlock, ted int) {
	for j, r := range b.Resnets {
		resnetSpec(s, fmt.Sprintf("%sresnets.%d.", p, j), r, ted)
	}
	for j := 0; j < b.Attentions; j++ {
		c.transformerSpec(s, fmt.Sprintf("%sattentions.%d.", p, j), b)
	}
}

// resnetSpec: ResnetBlock2D; ted == 0 means no time embedding (VAE).
func resnetSpec(s *specList, p string, r UNetResnet, ted int) {
	s.norm(p+"norm1", r.In)
	s.conv(p+"conv1", r.Out, r.In, 3)
	if ted > 0 {
		s.linear(p+"time_emb_proj", r.Out, ted, true)
	}
	s.norm(p+"norm2", r.Out)
	s.conv(p+"conv2", r.Out, r.Out, 3)
	if r.In != r.Out {
		s.conv(p+"conv_shortcut", r.Out, r.In, 1)
	}
}

// transformerSpec: Transformer2DModel with BasicTransformerBlocks
// (self-attention, cross-attention, GEGLU feed-forward; q/k/v without bias).
func (c *UNetConfig) transformerSpec(s *specList, p string, b UNetBlock) {
	ch, inner := b.Out, b.Heads*b.HeadDim
	s.norm(p+"norm", ch)
	if c.UseLinearProjection {
		s.linear(p+"proj_in", inner, ch, true)
	} else {
		s.conv(p+"proj_in", inner, ch, 1)
	}
	ff := UNetFeedForwardMult * inner
	for k := 0; k < b.TransformerLayers; k++ {
		t := fmt.Sprintf("%stransformer_blocks.%d.", p, k)
		s.norm(t+"norm1", inner)
		s.linear(t+"attn1.to_q", inner, inner, false)
		s.linear(t+"attn1.to_k", inner, inner, false)
		s.linear(t+"attn1.to_v", inner, inner, false)
		s.linear(t+"attn1.to_out.0", inner, inner, true)
		s.norm(t+"norm2", inner)
		s.linear(t+"attn2.to_q", inner, inner, false)
		s.linear(t+"attn2.to_k", inner, b.CrossAttentionDim, false)
		s.linear(t+"attn2.to_v", inner, b.CrossAttentionDim, false)
		s.linear(t+"attn2.to_out.0", inner, inner, true)
		s.norm(t+"norm3", inner)
		s.linear(t+"ff.net.0.proj", 2*ff, inner, true)
		s.linear(t+"ff.net.2", inner, ff, true)
	}
	if c.UseLinearProjection {
		s.linear(p+"proj_out", ch, inner, true)
	} else {
		s.conv(p+"proj_out", ch, inner, 1)
	}
}
