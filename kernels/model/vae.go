package model

import "fmt"

// VAEConfig is a diffusers AutoencoderKL config (vae/config.json). Defaults
// are diffusers 0.26's for absent keys.
type VAEConfig struct {
	InChannels       int      `json:"in_channels"`        // default 3
	OutChannels      int      `json:"out_channels"`       // default 3
	DownBlockTypes   []string `json:"down_block_types"`   // DownEncoderBlock2D
	UpBlockTypes     []string `json:"up_block_types"`     // UpDecoderBlock2D
	BlockOutChannels []int    `json:"block_out_channels"` // default [64]
	LayersPerBlock   int      `json:"layers_per_block"`   // default 1 (decoder blocks have one more resnet)
	ActFn            string   `json:"act_fn"`             // "silu"
	LatentChannels   int      `json:"latent_channels"`    // default 4
	NormNumGroups    int      `json:"norm_num_groups"`    // default 32
	SampleSize       int      `json:"sample_size"`        // informational
	ScalingFactor    float64  `json:"scaling_factor"`     // default 0.18215; decoder input = latents / ScalingFactor
	ForceUpcast      bool     `json:"force_upcast"`       // default true (irrelevant in fp32)
	// Keys of later diffusers versions (defaults keep 0.26 behaviour).
	ShiftFactor          *float64 `json:"shift_factor"`            // must be null/absent
	UseQuantConv         bool     `json:"use_quant_conv"`          // default true
	UsePostQuantConv     bool     `json:"use_post_quant_conv"`     // default true
	MidBlockAddAttention bool     `json:"mid_block_add_attention"` // default true
}

// VAEGroupNormEps is the epsilon of every VAE GroupNorm (diffusers constant).
const VAEGroupNormEps = 1e-6

func (c *VAEConfig) setDefaults() {
	*c = VAEConfig{
		InChannels: 3, OutChannels: 3,
		DownBlockTypes: []string{"DownEncoderBlock2D"}, UpBlockTypes: []string{"UpDecoderBlock2D"},
		BlockOutChannels: []int{64}, LayersPerBlock: 1, ActFn: "silu", LatentChannels: 4, NormNumGroups: 32,
		SampleSize: 32, ScalingFactor: 0.18215, ForceUpcast: true,
		UseQuantConv: true, UsePostQuantConv: true, MidBlockAddAttention: true,
	}
}

func (c *VAEConfig) validate() error {
	n := len(c.BlockOutChannels)
	if n == 0 || len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return fmt.Errorf("%w: block_out_channels (%d), down_block_types (%d), up_block_types (%d) must have the same non-zero length",
			ErrConfig, n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	}
	for _, r := range []struct {
		key    string
		v, max int
	}{
		{"number of blocks", n, maxBlocks}, {"in_channels", c.InChannels, maxChannels}, {"out_channels", c.OutChannels, maxChannels},
		{"latent_channels", c.LatentChannels, maxChannels}, {"layers_per_block", c.LayersPerBlock, maxLayers},
		{"norm_num_groups", c.NormNumGroups, maxChannels},
	} {
		if err := checkRange(r.key, r.v, 1, r.max); err != nil {
			return err
		}
	}
	for _, ch := range c.BlockOutChannels {
		if err := checkRange("block_out_channels", ch, 1, maxChannels); err != nil {
			return err
		}
	}
	for i := range c.BlockOutChannels {
		if c.DownBlockTypes[i] != "DownEncoderBlock2D" || c.UpBlockTypes[i] != "UpDecoderBlock2D" {
			return fmt.Errorf("%w: block types %q / %q", ErrUnsupported, c.DownBlockTypes[i], c.UpBlockTypes[i])
		}
	}
	switch {
	case c.ActFn != "silu":
		return fmt.Errorf("%w: act_fn %q", ErrUnsupported, c.ActFn)
	case c.ShiftFactor != nil && *c.ShiftFactor != 0:
		return fmt.Errorf("%w: shift_factor %g", ErrUnsupported, *c.ShiftFactor)
	case !c.MidBlockAddAttention:
		return fmt.Errorf("%w: mid_block_add_attention false", ErrUnsupported)
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0 || c.LayersPerBlock <= 0 || c.NormNumGroups <= 0:
		return fmt.Errorf("%w: channels, layers_per_block and norm_num_groups must be positive", ErrConfig)
	case !(c.ScalingFactor > 0):
		return fmt.Errorf("%w: scaling_factor %g", ErrConfig, c.ScalingFactor)
	}
	for _, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("%w: block_out_channels %v must be positive multiples of norm_num_groups %d", ErrConfig, c.BlockOutChannels, c.NormNumGroups)
		}
	}
	return nil
}

// VAEUpBlock is one UpDecoderBlock2D of the decoder.
type VAEUpBlock struct {
	Out      int
	Resnets  []UNetResnet // LayersPerBlock+1 resnets, no time embedding
	Upsample bool         // nearest 2x + 3x3 conv at the end (all but the last block)
}

// DecoderLayout returns the decoder's up blocks in execution order. The
// decoder also has conv_in (latent → BlockOutChannels[last]), a mid block
// (resnet, single-head self-attention over all pixels, resnet) at
// BlockOutChannels[last], conv_norm_out + SiLU + conv_out (BlockOutChannels[0] → OutChannels).
func (c *VAEConfig) DecoderLayout() []VAEUpBlock {
	n := len(c.BlockOutChannels)
	var blocks []VAEUpBlock
	out := c.BlockOutChannels[n-1]
	for i := 0; i < n; i++ {
		prev := out
		out = c.BlockOutChannels[n-1-i]
		b := VAEUpBlock{Out: out, Upsample: i < n-1}
		for j := 0; j <= c.LayersPerBlock; j++ {
			in := out
			if j == 0 {
				in = prev
			}
			b.Resnets = append(b.Resnets, UNetResnet{In: in, Out: out})
		}
		blocks = append(blocks, b)
	}
	return blocks
}

func vaeMidSpec(s *specList, p string, ch int) {
	resnetSpec(s, p+"resnets.0.", UNetResnet{ch, ch}, 0)
	s.norm(p+"attentions.0.group_norm", ch)
	for _, proj := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
		s.linear(p+"attentions.0."+proj, ch, ch, true)
	}
	resnetSpec(s, p+"resnets.1.", UNetResnet{ch, ch}, 0)
}

// DecoderSpec lists the tensors the decoder needs: post_quant_conv (when
// use_post_quant_conv) and decoder.*.
func (c *VAEConfig) DecoderSpec() []TensorSpec {
	var s specList
	n := len(c.BlockOutChannels)
	if n == 0 {
		return nil
	}
	top := c.BlockOutChannels[n-1]
	if c.UsePostQuantConv {
		s.conv("post_quant_conv", c.LatentChannels, c.LatentChannels, 1)
	}
	s.conv("decoder.conv_in", top, c.LatentChannels, 3)
	vaeMidSpec(&s, "decoder.mid_block.", top)
	for i, b := range c.DecoderLayout() {
		for j, r := range b.Resnets {
			resnetSpec(&s, fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.", i, j), r, 0)
		}
		if b.Upsample {
			s.conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), b.Out, b.Out, 3)
		}
	}
	s.norm("decoder.conv_norm_out", c.BlockOutChannels[0])
	s.conv("decoder.conv_out", c.OutChannels, c.BlockOutChannels[0], 3)
	return s.specs
}

// EncoderSpec lists the encoder's tensors (encoder.*, quant_conv). The
// text-to-image pipeline never runs the encoder: Open accepts a checkpoint
// with all of these tensors or none of them, and does not load them.
func (c *VAEConfig) EncoderSpec() []TensorSpec {
	var s specList
	n := len(c.BlockOutChannels)
	if n == 0 {
		return nil
	}
	top := c.BlockOutChannels[n-1]
	s.conv("encoder.conv_in", c.BlockOutChannels[0], c.InChannels, 3)
	out := c.BlockOutChannels[0]
	for i := 0; i < n; i++ {
		in := out
		out = c.BlockOutChannels[i]
		for j := 0; j < c.LayersPerBlock; j++ {
			resnetSpec(&s, fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.", i, j), UNetResnet{in, out}, 0)
			in = out
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), out, out, 3)
		}
	}
	vaeMidSpec(&s, "encoder.mid_block.", top)
	s.norm("encoder.conv_norm_out", top)
	s.conv("encoder.conv_out", 2*c.LatentChannels, top, 3)
	if c.UseQuantConv {
		s.conv("quant_conv", 2*c.LatentChannels, 2*c.LatentChannels, 1)
	}
	return s.specs
}
