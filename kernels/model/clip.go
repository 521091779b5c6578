package model

import "fmt"

// CLIPTextConfig is a transformers CLIPTextConfig (text_encoder*/config.json).
// Defaults are transformers 4.36's for absent keys.
type CLIPTextConfig struct {
	VocabSize             int     `json:"vocab_size"`              // default 49408
	HiddenSize            int     `json:"hidden_size"`             // default 512
	IntermediateSize      int     `json:"intermediate_size"`       // default 2048
	ProjectionDim         int     `json:"projection_dim"`          // default 512 (used by WithProjection)
	NumHiddenLayers       int     `json:"num_hidden_layers"`       // default 12
	NumAttentionHeads     int     `json:"num_attention_heads"`     // default 8
	MaxPositionEmbeddings int     `json:"max_position_embeddings"` // default 77
	HiddenAct             string  `json:"hidden_act"`              // "quick_gelu" (default) or "gelu" (exact erf GELU)
	LayerNormEps          float64 `json:"layer_norm_eps"`          // default 1e-5
	PadTokenID            int     `json:"pad_token_id"`            // default 1
	BOSTokenID            int     `json:"bos_token_id"`            // default 49406
	EOSTokenID            int     `json:"eos_token_id"`            // default 49407

	// WithProjection is true for CLIPTextModelWithProjection (text_encoder_2):
	// the checkpoint then has text_projection.weight [ProjectionDim][HiddenSize].
	WithProjection bool `json:"-"`
}

func (c *CLIPTextConfig) setDefaults() {
	*c = CLIPTextConfig{
		VocabSize: 49408, HiddenSize: 512, IntermediateSize: 2048, ProjectionDim: 512,
		NumHiddenLayers: 12, NumAttentionHeads: 8, MaxPositionEmbeddings: 77,
		HiddenAct: "quick_gelu", LayerNormEps: 1e-5, PadTokenID: 1, BOSTokenID: 49406, EOSTokenID: 49407,
	}
}

func (c *CLIPTextConfig) validate() error {
	for _, r := range []struct {
		key    string
		v, max int
	}{
		{"vocab_size", c.VocabSize, maxVocab}, {"hidden_size", c.HiddenSize, maxChannels},
		{"intermediate_size", c.IntermediateSize, 4 * maxChannels}, {"num_hidden_layers", c.NumHiddenLayers, maxCLIP},
		{"num_attention_heads", c.NumAttentionHeads, maxChannels}, {"max_position_embeddings", c.MaxPositionEmbeddings, 1 << 16},
		{"projection_dim", c.ProjectionDim, maxChannels},
	} {
		if err := checkRange(r.key, r.v, 1, r.max); err != nil {
			return err
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("%w: hidden_size %d not divisible by num_attention_heads %d", ErrConfig, c.HiddenSize, c.NumAttentionHeads)
	}
	if c.NumHiddenLayers < 2 {
		return fmt.Errorf("%w: num_hidden_layers %d: SDXL uses the penultimate layer, need at least 2", ErrConfig, c.NumHiddenLayers)
	}
	if c.HiddenAct != "quick_gelu" && c.HiddenAct != "gelu" {
		return fmt.Errorf("%w: hidden_act %q (want quick_gelu or gelu)", ErrUnsupported, c.HiddenAct)
	}
	if !(c.LayerNormEps > 0) {
		return fmt.Errorf("%w: layer_norm_eps must be positive", ErrConfig)
	}
	return nil
}

// HeadDim is HiddenSize / NumAttentionHeads.
func (c *CLIPTextConfig) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// PoolByArgmax reports how transformers 4.36 picks the pooled (EOS) position:
// with the legacy eos_token_id == 2 (as in the SDXL configs) it is
// argmax(input_ids), i.e. the first occurrence of the largest id (49407);
// otherwise it is the first position whose id equals EOSTokenID.
func (c *CLIPTextConfig) PoolByArgmax() bool { return c.EOSTokenID == 2 }

// Spec lists the tensors of CLIPTextModel / CLIPTextModelWithProjection. The
// checkpoint keys have no prefix in a diffusers folder (prefix ""); a prefix
// is prepended verbatim (e.g. "cond_stage_model.").
//
// The non-persistent buffer text_model.embeddings.position_ids that older
// checkpoints carry is not listed; Open tolerates it (see OptionalSpec).
func (c *CLIPTextConfig) Spec(prefix string) []TensorSpec {
	var s specList
	h, p := c.HiddenSize, prefix+"text_model."
	s.add(p+"embeddings.token_embedding.weight", c.VocabSize, h)                // [vocab][hidden]
	s.add(p+"embeddings.position_embedding.weight", c.MaxPositionEmbeddings, h) // [77][hidden]
	for i := 0; i < c.NumHiddenLayers; i++ {
		l := fmt.Sprintf("%sencoder.layers.%d.", p, i)
		s.norm(l+"layer_norm1", h)
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			s.linear(l+"self_attn."+proj, h, h, true)
		}
		s.norm(l+"layer_norm2", h)
		s.linear(l+"mlp.fc1", c.IntermediateSize, h, true)
		s.linear(l+"mlp.fc2", h, c.IntermediateSize, true)
	}
	s.norm(p+"final_layer_norm", h)
	if c.WithProjection {
		s.linear(prefix+"text_projection", c.ProjectionDim, h, false)
	}
	return s.specs
}

// OptionalSpec lists tensors a checkpoint may carry that the model ignores:
// text_model.embeddings.position_ids [1][MaxPositionEmbeddings] (any integer
// or float dtype), written by transformers before 4.31.
func (c *CLIPTextConfig) OptionalSpec(prefix string) []TensorSpec {
	return []TensorSpec{{Name: prefix + "text_model.embeddings.position_ids", Shape: []int64{1, int64(c.MaxPositionEmbeddings)}}}
}
