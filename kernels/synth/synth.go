// Package synth writes random-weight checkpoints in the diffusers layout of
// stabilityai/sdxl-turbo, for tests (preset "tiny", the golden tiny
// architecture) and benchmarks (preset "sdxl-turbo", the real configs, about
// 7 GB at fp16). Configs are embedded presets; tensor names and shapes come
// from package model's specs, so whatever synth writes, model.Open loads.
//
// Weights are deterministic in (seed, tensor name): ~U(-1/sqrt(fan_in),
// +1/sqrt(fan_in)) for matrices, convolutions and embeddings (fan_in = product
// of all dimensions but the first), 1 for norm weights (every 1-D .weight), 0
// for biases, so activations stay finite. Data is streamed one chunk at a time
// (never the whole model in memory) into a temporary folder next to the
// destination that is renamed into place at the end: an error or a cancelled
// context leaves nothing at the destination.
//
// Pure Go (no cgo).
package synth

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/safetensors"
)

//go:embed presets
var presetFS embed.FS

// Presets lists the preset names.
func Presets() []string {
	ents, _ := presetFS.ReadDir("presets")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// ErrExists is returned when the destination already exists.
var ErrExists = errors.New("destination already exists")

// ErrOptions wraps invalid Options.
var ErrOptions = errors.New("invalid synth options")

// Options control Write.
type Options struct {
	Preset string            // "tiny" or "sdxl-turbo"
	Seed   int64             // weights are a function of (Seed, tensor name)
	DType  safetensors.DType // F32, F16 or BF16; "" = the preset's default (F32 for tiny, F16 for sdxl-turbo)
	// Tokenizer is an optional folder with vocab.json and merges.txt (or a
	// model folder with tokenizer/vocab.json and tokenizer/merges.txt) copied
	// into tokenizer/ and tokenizer_2/. Empty: a small valid BPE vocabulary is
	// generated (CLIP's ids for the byte tokens and the special tokens).
	Tokenizer string
	// Progress, if set, is called after each tensor is written.
	Progress func(Progress)
}

// Progress reports how far Write is.
type Progress struct {
	File       string // path relative to the model folder, e.g. "unet/diffusion_pytorch_model.safetensors"
	Tensor     string // the tensor just written
	DoneBytes  int64  // tensor bytes written so far (all files)
	TotalBytes int64  // tensor bytes of the whole model
}

func (o *Options) resolve() error {
	if _, err := fs.Stat(presetFS, "presets/"+o.Preset+"/model_index.json"); o.Preset == "" || err != nil {
		return fmt.Errorf("%w: unknown preset %q (have %v)", ErrOptions, o.Preset, Presets())
	}
	if o.DType == "" {
		o.DType = safetensors.F32
		if o.Preset == "sdxl-turbo" {
			o.DType = safetensors.F16
		}
	}
	switch o.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16:
	default:
		return fmt.Errorf("%w: dtype %q (want F32, F16 or BF16)", ErrOptions, o.DType)
	}
	return nil
}

// weightFile is one safetensors file of the plan.
type weightFile struct {
	rel   string // relative path
	specs []model.TensorSpec
}

// plan derives the weight files from a loaded config.
func plan(cfg *model.Config) []weightFile {
	return []weightFile{
		{"text_encoder/model.safetensors", cfg.TextEncoder.Spec("")},
		{"text_encoder_2/model.safetensors", cfg.TextEncoder2.Spec("")},
		{"unet/diffusion_pytorch_model.safetensors", cfg.UNet.Spec()},
		{"vae/diffusion_pytorch_model.safetensors", append(cfg.VAE.EncoderSpec(), cfg.VAE.DecoderSpec()...)},
	}
}

// Size returns the number of tensor bytes Write would produce for opts (the
// files add a header of a few hundred KB), without writing anything.
func Size(opts Options) (int64, error) {
	if err := opts.resolve(); err != nil {
		return 0, err
	}
	cfg, err := presetConfig(opts.Preset)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range plan(cfg) {
		n += model.CountParams(f.specs) * opts.DType.Size()
	}
	return n, nil
}

// presetConfig loads a preset's configs through model.LoadConfig (from a
// scratch folder, with a stand-in vocabulary).
func presetConfig(preset string) (*model.Config, error) {
	tmp, err := os.MkdirTemp("", "tdxl-synth-config-")
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := writePreset(tmp, preset); err != nil {
		return nil, err
	}
	for _, d := range []string{"tokenizer", "tokenizer_2"} {
		for _, f := range []string{"vocab.json", "merges.txt"} {
			if err := os.WriteFile(filepath.Join(tmp, d, f), []byte("{}"), 0o644); err != nil {
				return nil, fmt.Errorf("synth: %w", err)
			}
		}
	}
	cfg, err := model.LoadConfig(tmp)
	if err != nil {
		return nil, fmt.Errorf("synth: preset %s: %w", preset, err)
	}
	return cfg, nil
}

// writePreset copies a preset's config files into dir.
func writePreset(dir, preset string) error {
	root := "presets/" + preset
	return fs.WalkDir(presetFS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.FromSlash(p[len(root):])
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := presetFS.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFileSync(filepath.Join(dir, rel), b)
	})
}

func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("synth: writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("synth: syncing %s: %w", p, err)
	}
	return f.Close()
}

// Write synthesizes the preset into dir, which must not exist yet. On error
// or cancellation nothing is left at dir.
func Write(ctx context.Context, dir string, opts Options) (err error) {
	if err := opts.resolve(); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("synth: %s: %w", dir, ErrExists)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := writePreset(tmp, opts.Preset); err != nil {
		return fmt.Errorf("synth: preset %s: %w", opts.Preset, err)
	}
	if err := writeTokenizers(tmp, opts.Tokenizer); err != nil {
		return err
	}
	cfg, err := model.LoadConfig(tmp)
	if err != nil {
		return fmt.Errorf("synth: preset %s: %w", opts.Preset, err)
	}
	if err := writeWeights(ctx, tmp, plan(cfg), opts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("synth: moving the model into %s: %w", dir, err)
	}
	if d, err := os.Open(parent); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// writeWeights writes every planned safetensors file, reporting progress
// after each tensor.
func writeWeights(ctx context.Context, dir string, files []weightFile, opts Options) error {
	var total, done int64
	for _, f := range files {
		total += model.CountParams(f.specs) * opts.DType.Size()
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		ws := make([]safetensors.WriteTensor, len(f.specs))
		for i, s := range f.specs {
			fill, size, rel := filler(ctx, opts.Seed, s, opts.DType), s.NumElements()*opts.DType.Size(), f.rel
			ws[i] = safetensors.WriteTensor{Name: s.Name, DType: opts.DType, Shape: s.Shape, Fill: func(w io.Writer) error {
				if err := fill(w); err != nil {
					return err
				}
				done += size
				if opts.Progress != nil {
					opts.Progress(Progress{File: rel, Tensor: s.Name, DoneBytes: done, TotalBytes: total})
				}
				return nil
			}}
		}
		if err := safetensors.WriteFile(filepath.Join(dir, filepath.FromSlash(f.rel)), ws, map[string]string{"format": "pt"}); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	return nil
}
