package model

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tdxl/tdxl/kernels/safetensors"
)

// goldenDir is $TDXL_GOLDEN_DIR or ../shared/golden/tiny-sdxl relative to the
// repository root. Missing data fails the test in CI and skips it elsewhere.
func goldenDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TDXL_GOLDEN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "golden", "tiny-sdxl")
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("golden set missing (set TDXL_GOLDEN_DIR): %v", err)
		}
		t.Skipf("golden set missing: %v", err)
	}
	return dir
}

func realConfigsDir(t testing.TB) string {
	return filepath.Join(goldenDir(t), "..", "sdxl-turbo-configs")
}

// fileSpecs reads a safetensors file's tensors as specs, sorted by name.
func fileSpecs(t *testing.T, path string) ([]TensorSpec, safetensors.DType) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []TensorSpec
	var dt safetensors.DType
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		out = append(out, TensorSpec{Name: n, Shape: info.Shape})
		dt = info.DType
	}
	return out, dt
}

func sortSpecs(s []TensorSpec) []TensorSpec {
	s = slices.Clone(s)
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	return s
}

func diffSpecs(t *testing.T, what string, got, want []TensorSpec) {
	t.Helper()
	g, w := map[string][]int64{}, map[string][]int64{}
	for _, s := range got {
		if _, dup := g[s.Name]; dup {
			t.Errorf("%s: spec lists %s twice", what, s.Name)
		}
		g[s.Name] = s.Shape
	}
	for _, s := range want {
		w[s.Name] = s.Shape
	}
	bad := 0
	for n, sh := range w {
		if gs, ok := g[n]; !ok {
			t.Errorf("%s: spec lacks %s %v", what, n, sh)
			bad++
		} else if !slices.Equal(gs, sh) {
			t.Errorf("%s: %s spec shape %v, file %v", what, n, gs, sh)
			bad++
		}
		if bad > 10 {
			t.FailNow()
		}
	}
	for n := range g {
		if _, ok := w[n]; !ok {
			t.Errorf("%s: spec has %s, file does not", what, n)
		}
	}
}

// TestSpecsMatchGoldenCheckpoint proves the spec generators against the tiny
// golden checkpoint: the spec set equals the file's tensor set exactly.
func TestSpecsMatchGoldenCheckpoint(t *testing.T) {
	dir := filepath.Join(goldenDir(t), "model")
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	te, _ := fileSpecs(t, filepath.Join(dir, "text_encoder", "model.safetensors"))
	diffSpecs(t, "text_encoder", cfg.TextEncoder.Spec(""), te)
	te2, _ := fileSpecs(t, filepath.Join(dir, "text_encoder_2", "model.safetensors"))
	diffSpecs(t, "text_encoder_2", cfg.TextEncoder2.Spec(""), te2)
	for _, f := range []string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"} {
		u, _ := fileSpecs(t, filepath.Join(dir, "unet", f))
		diffSpecs(t, "unet/"+f, cfg.UNet.Spec(), u)
	}
	v, _ := fileSpecs(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"))
	diffSpecs(t, "vae", append(cfg.VAE.DecoderSpec(), cfg.VAE.EncoderSpec()...), v)
}

// TestGoldenConfigMatchesManifest: what LoadConfig reads from the golden
// model folder agrees with the configs recorded in manifest.json.
func TestGoldenConfigMatchesManifest(t *testing.T) {
	dir := goldenDir(t)
	cfg, err := LoadConfig(filepath.Join(dir, "model"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	var te, te2 CLIPTextConfig
	var u UNetConfig
	var v VAEConfig
	var sc SchedulerConfig
	for key, dst := range map[string]interface{ setDefaults() }{"text_encoder": &te, "text_encoder_2": &te2, "unet": &u, "vae": &v, "scheduler": &sc} {
		dst.setDefaults()
		if err := json.Unmarshal(man.Config[key], dst); err != nil {
			t.Fatalf("manifest %s: %v", key, err)
		}
	}
	te2.WithProjection = true
	if te != cfg.TextEncoder || te2 != cfg.TextEncoder2 {
		t.Errorf("text encoders: manifest %+v %+v, folder %+v %+v", te, te2, cfg.TextEncoder, cfg.TextEncoder2)
	}
	if !reflect.DeepEqual(u.Spec(), cfg.UNet.Spec()) || u.NormEps != cfg.UNet.NormEps || u.FlipSinToCos != cfg.UNet.FlipSinToCos ||
		u.FreqShift != cfg.UNet.FreqShift || u.AdditionEmbedType != cfg.UNet.AdditionEmbedType {
		t.Errorf("unet: manifest and folder configs differ")
	}
	if !reflect.DeepEqual(v, cfg.VAE) {
		t.Errorf("vae: manifest %+v, folder %+v", v, cfg.VAE)
	}
	if !reflect.DeepEqual(sc, cfg.Scheduler) {
		t.Errorf("scheduler: manifest %+v, folder %+v", sc, cfg.Scheduler)
	}
	if cfg.Tokenizer.Dir != filepath.Join(dir, "model", "tokenizer") || cfg.Tokenizer2.Dir != filepath.Join(dir, "model", "tokenizer_2") {
		t.Errorf("tokenizer dirs %q %q", cfg.Tokenizer.Dir, cfg.Tokenizer2.Dir)
	}
}

// tinyUNetJSON is the golden tiny UNet's architecture (values as in its config.json).
const tinyUNetJSON = `{"_class_name": "UNet2DConditionModel", "addition_embed_type": "text_time",
 "addition_time_embed_dim": 8, "attention_head_dim": [2, 4, 6], "block_out_channels": [16, 32, 48],
 "cross_attention_dim": 72, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
 "norm_num_groups": 8, "projection_class_embeddings_input_dim": 88, "transformer_layers_per_block": [1, 2, 3],
 "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": true,
 "class_embed_type": null, "num_attention_heads": null}`

func TestUNetLayoutTiny(t *testing.T) {
	var u UNetConfig
	u.setDefaults()
	if err := json.Unmarshal([]byte(tinyUNetJSON), &u); err != nil {
		t.Fatal(err)
	}
	if err := u.validate(); err != nil {
		t.Fatal(err)
	}
	l, err := u.Layout()
	if err != nil {
		t.Fatal(err)
	}
	if l.TimeEmbedDim != 64 || l.Mid.TransformerLayers != 3 || l.Mid.Heads != 6 || l.Mid.HeadDim != 8 || l.Mid.Attentions != 1 {
		t.Errorf("mid %+v ted %d", l.Mid, l.TimeEmbedDim)
	}
	if l.Up[0].TransformerLayers != 3 || l.Up[1].TransformerLayers != 2 || l.Up[2].Attentions != 0 || len(l.Up[0].Resnets) != 3 {
		t.Errorf("up blocks %+v", l.Up)
	}
	// up_blocks.1: in = prev 48 / out 32 + skips 32, 32, 16.
	if want := []UNetResnet{{80, 32}, {64, 32}, {48, 32}}; !slices.Equal(l.Up[1].Resnets, want) || !l.Up[1].Upsample || l.Up[2].Upsample {
		t.Errorf("up_blocks.1 resnets %v", l.Up[1].Resnets)
	}
	if l.Down[0].Attentions != 0 || l.Down[1].Heads != 4 || l.Down[1].HeadDim != 8 || !l.Down[1].Downsample || l.Down[2].Downsample {
		t.Errorf("down blocks %+v", l.Down)
	}
	// Wrong list lengths and indivisible heads are refused.
	u.AttentionHeadDim = IntList{2, 4}
	if err := u.validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("2 head counts for 3 blocks: %v", err)
	}
	u.AttentionHeadDim = IntList{2, 4, 5}
	if err := u.validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("48 channels / 5 heads: %v", err)
	}
	u.AttentionHeadDim = IntList{2, 4, 6}
	u.ClassEmbedType = json.RawMessage(`"timestep"`)
	if err := u.validate(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("class_embed_type: %v", err)
	}
}

// realModelDir assembles the real sdxl-turbo configs plus the (identical)
// tokenizer files of the tiny model into a folder LoadConfig accepts.
func realModelDir(t *testing.T) string {
	t.Helper()
	src, tiny := realConfigsDir(t), filepath.Join(goldenDir(t), "model")
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755)
		return os.Symlink(mustAbs(t, p), filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tokenizer", "tokenizer_2"} {
		for _, f := range []string{"vocab.json", "merges.txt"} {
			if err := os.Symlink(mustAbs(t, filepath.Join(tiny, tok, f)), filepath.Join(dst, tok, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRealConfigParamCounts checks the specs derived from the real
// sdxl-turbo configs against the published parameter counts.
func TestRealConfigParamCounts(t *testing.T) {
	cfg, err := LoadConfig(realModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{
		"text_encoder":   CountParams(cfg.TextEncoder.Spec("")),
		"text_encoder_2": CountParams(cfg.TextEncoder2.Spec("")),
		"unet":           CountParams(cfg.UNet.Spec()),
		"vae_decoder":    CountParams(cfg.VAE.DecoderSpec()),
		"vae_encoder":    CountParams(cfg.VAE.EncoderSpec()),
	}
	want := map[string]int64{
		"text_encoder":   123_060_480,   // CLIP ViT-L/14 text tower
		"text_encoder_2": 694_659_840,   // OpenCLIP ViT-bigG/14 text tower + projection
		"unet":           2_567_463_684, // SDXL UNet
		"vae_decoder":    49_490_199,    // decoder + post_quant_conv
		"vae_encoder":    34_163_664,    // encoder + quant_conv (83,653,863 for the whole AutoencoderKL)
	}
	for k, w := range want {
		if counts[k] != w {
			t.Errorf("%s: %d params, want %d", k, counts[k], w)
		}
	}
	t.Logf("params: %v", counts)
	if n := len(cfg.UNet.Spec()); n != 1680 {
		t.Errorf("unet has %d tensors, want 1680", n)
	}
}

// linkModel makes a copy of the golden model folder out of symlinks, so a
// test can replace single files.
func linkModel(t *testing.T) string {
	t.Helper()
	src := filepath.Join(goldenDir(t), "model")
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return os.Symlink(mustAbs(t, p), filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestOpenGolden(t *testing.T) {
	m, err := Open(filepath.Join(goldenDir(t), "model"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.UNet.Tensors) != len(m.Config.UNet.Spec()) || len(m.VAE.Tensors) != len(m.Config.VAE.DecoderSpec()) ||
		len(m.TextEncoder2.Tensors) != len(m.Config.TextEncoder2.Spec("")) {
		t.Errorf("tensor counts unet %d vae %d te2 %d", len(m.UNet.Tensors), len(m.VAE.Tensors), len(m.TextEncoder2.Tensors))
	}
	if _, ok := m.VAE.Tensors["encoder.conv_in.weight"]; ok {
		t.Error("VAE encoder tensors loaded")
	}
	u := m.Config.UNet
	w, err := m.UNet.Float32("conv_in.weight")
	if err != nil || len(w) != u.BlockOutChannels[0]*u.InChannels*u.ConvInKernel*u.ConvInKernel {
		t.Fatalf("conv_in: %d values, %v", len(w), err)
	}
	if _, err := m.UNet.Tensor("nope"); !errors.Is(err, ErrMissing) {
		t.Errorf("Tensor(nope): %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOpenFP16Variant(t *testing.T) {
	dir := linkModel(t)
	os.Remove(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.UNet.Files[0].Path(); !strings.HasSuffix(got, ".fp16.safetensors") {
		t.Errorf("unet file %s", got)
	}
	if m.UNet.Tensors["conv_in.weight"].DType != safetensors.F16 {
		t.Errorf("dtype %s", m.UNet.Tensors["conv_in.weight"].DType)
	}
}

// rewrite replaces a component's weights by a modified copy.
func rewrite(t *testing.T, dir, comp, file string, edit func([]safetensors.WriteTensor) []safetensors.WriteTensor) string {
	t.Helper()
	p := filepath.Join(dir, comp, file)
	f, err := safetensors.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var ws []safetensors.WriteTensor
	for _, n := range f.Names() {
		tt, _ := f.Tensor(n)
		ws = append(ws, safetensors.WriteTensor{Name: n, DType: tt.DType, Shape: tt.Shape, Data: slices.Clone(tt.Data)})
	}
	f.Close()
	ws = edit(ws)
	os.Remove(p)
	if err := safetensors.WriteFile(p, ws, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenStrictErrors(t *testing.T) {
	type edit func([]safetensors.WriteTensor) []safetensors.WriteTensor
	drop := func(name string) edit {
		return func(ws []safetensors.WriteTensor) []safetensors.WriteTensor {
			return slices.DeleteFunc(ws, func(w safetensors.WriteTensor) bool { return w.Name == name })
		}
	}
	modify := func(name string, f func(*safetensors.WriteTensor)) edit {
		return func(ws []safetensors.WriteTensor) []safetensors.WriteTensor {
			for i := range ws {
				if ws[i].Name == name {
					f(&ws[i])
				}
			}
			return ws
		}
	}
	cases := []struct {
		name, comp, file, tensor string
		edit                     edit
		want                     error
	}{
		{"missing", "unet", "diffusion_pytorch_model.safetensors", "conv_out.bias", drop("conv_out.bias"), ErrMissing},
		{"unexpected", "text_encoder", "model.safetensors", "text_model.extra", func(ws []safetensors.WriteTensor) []safetensors.WriteTensor {
			return append(ws, safetensors.WriteTensor{Name: "text_model.extra", DType: safetensors.F32, Shape: []int64{1}, Data: make([]byte, 4)})
		}, ErrUnexpected},
		{"wrong shape", "vae", "diffusion_pytorch_model.safetensors", "post_quant_conv.bias", modify("post_quant_conv.bias", func(w *safetensors.WriteTensor) {
			w.Shape = []int64{2, 2}
		}), ErrShape},
		{"wrong dtype", "text_encoder_2", "model.safetensors", "text_projection.weight", modify("text_projection.weight", func(w *safetensors.WriteTensor) {
			w.DType = safetensors.I32
		}), ErrDType},
		{"partial vae encoder", "vae", "diffusion_pytorch_model.safetensors", "quant_conv.bias", drop("quant_conv.bias"), ErrMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := linkModel(t)
			p := rewrite(t, dir, c.comp, c.file, c.edit)
			m, err := Open(dir)
			if err == nil {
				m.Close()
				t.Fatal("no error")
			}
			var te *TensorError
			if !errors.Is(err, c.want) || !errors.As(err, &te) || te.File != p || te.Tensor != c.tensor {
				t.Fatalf("err = %v, want %v about %s in %s", err, c.want, c.tensor, p)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.tensor) {
				t.Fatalf("message %q lacks file or tensor", err)
			}
		})
	}
	t.Run("vae with deprecated attention names", func(t *testing.T) {
		dir := linkModel(t)
		rewrite(t, dir, "vae", "diffusion_pytorch_model.safetensors", func(ws []safetensors.WriteTensor) []safetensors.WriteTensor {
			for i := range ws {
				for _, o := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
					old := map[string]string{"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}[o]
					ws[i].Name = strings.Replace(ws[i].Name, ".attentions.0."+o+".", ".attentions.0."+old+".", 1)
				}
			}
			return ws
		})
		m, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if tt, err := m.VAE.Tensor("decoder.mid_block.attentions.0.to_out.0.weight"); err != nil || tt.Name != "decoder.mid_block.attentions.0.to_out.0.weight" {
			t.Fatalf("renamed tensor: %v %q", err, tt.Name)
		}
	})
	t.Run("old and new attention name both present", func(t *testing.T) {
		dir := linkModel(t)
		p := rewrite(t, dir, "vae", "diffusion_pytorch_model.safetensors", func(ws []safetensors.WriteTensor) []safetensors.WriteTensor {
			for _, w := range ws {
				if w.Name == "decoder.mid_block.attentions.0.to_q.bias" {
					w.Name = "decoder.mid_block.attentions.0.query.bias"
					return append(ws, w)
				}
			}
			return ws
		})
		_, err := Open(dir)
		var te *TensorError
		if !errors.Is(err, ErrUnexpected) || !errors.As(err, &te) || te.File != p {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("vae without encoder", func(t *testing.T) {
		dir := linkModel(t)
		rewrite(t, dir, "vae", "diffusion_pytorch_model.safetensors", func(ws []safetensors.WriteTensor) []safetensors.WriteTensor {
			return slices.DeleteFunc(ws, func(w safetensors.WriteTensor) bool {
				return strings.HasPrefix(w.Name, "encoder.") || strings.HasPrefix(w.Name, "quant_conv.")
			})
		})
		m, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	})
}

func TestOpenBadFolders(t *testing.T) {
	writeFile := func(t *testing.T, p, s string) {
		os.Remove(p)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		mutate  func(t *testing.T, dir string)
		want    error
		mention string
	}{
		{"missing component folder", func(t *testing.T, d string) { os.RemoveAll(filepath.Join(d, "unet")) }, ErrConfig, "unet"},
		{"missing model_index", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "model_index.json")) }, ErrConfig, "model_index.json"},
		{"bad json", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "unet", "config.json"), `{"in_channels": 4,`)
		}, ErrConfig, "unet/config.json"},
		{"wrong type", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "vae", "config.json"), `{"block_out_channels": "many"}`)
		}, ErrConfig, "vae/config.json"},
		{"unsupported scheduler", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "scheduler", "scheduler_config.json"), `{"_class_name": "DDIMScheduler"}`)
		}, ErrUnsupported, "scheduler_config.json"},
		{"no weights", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, "vae", "diffusion_pytorch_model.safetensors"))
		}, ErrNoWeights, "vae"},
		{"truncated weights", func(t *testing.T, d string) {
			p := filepath.Join(d, "text_encoder", "model.safetensors")
			b, _ := os.ReadFile(p)
			writeFile(t, p, string(b[:len(b)/2]))
		}, safetensors.ErrOffsets, "model.safetensors"},
		{"missing tokenizer vocab", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "tokenizer_2", "vocab.json")) }, ErrConfig, "tokenizer_2"},
		{"absurd layer count", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "unet", "config.json"), `{"_class_name": "UNet2DConditionModel", "layers_per_block": 1000000}`)
		}, ErrConfig, "layers_per_block"},
		{"absurd vocabulary", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "text_encoder_2", "config.json"), `{"vocab_size": 4000000000}`)
		}, ErrConfig, "vocab_size"},
		{"heads do not divide", func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "text_encoder", "config.json"), `{"hidden_size": 32, "num_attention_heads": 5}`)
		}, ErrConfig, "text_encoder/config.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := linkModel(t)
			c.mutate(t, dir)
			m, err := Open(dir)
			if err == nil {
				m.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.want, c.mention)
			}
		})
	}
}

func TestDefaultsWhenKeysAbsent(t *testing.T) {
	var u UNetConfig
	u.setDefaults()
	if err := u.validate(); err != nil {
		t.Fatalf("diffusers default UNet config invalid: %v", err)
	}
	// diffusers' default architecture is SD 1.5's UNet except cross_attention_dim
	// (1280 by default, 768 in SD 1.5): 872,300,484 params; with 768 it is SD 1.5's
	// published 859,520,964 (4 blocks, 1x1 conv projections).
	if n := CountParams(u.Spec()); n != 872_300_484 {
		t.Errorf("default UNet: %d params", n)
	}
	u.CrossAttentionDim = IntList{768}
	if n := CountParams(u.Spec()); n != 859_520_964 {
		t.Errorf("default UNet: %d params", n)
	}
	var c CLIPTextConfig
	c.setDefaults()
	if c.EOSTokenID != 49407 || c.PoolByArgmax() || c.HiddenAct != "quick_gelu" {
		t.Errorf("clip defaults %+v", c)
	}
	var v VAEConfig
	v.setDefaults()
	if err := v.validate(); err != nil || v.ScalingFactor != 0.18215 {
		t.Errorf("vae defaults %+v: %v", v, err)
	}
}
