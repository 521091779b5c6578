package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/tdxl/tdxl/kernels/safetensors"
)

// TensorError is a strict-loading failure about one tensor of one file.
type TensorError struct {
	File   string // weights file (for a missing tensor: the component's file)
	Tensor string
	Err    error // ErrMissing, ErrUnexpected, ErrShape or ErrDType
	Got    string
	Want   string
}

func (e *TensorError) Error() string {
	s := fmt.Sprintf("model: %s: tensor %q: %v", e.File, e.Tensor, e.Err)
	if e.Got != "" || e.Want != "" {
		s += fmt.Sprintf(": got %s, want %s", e.Got, e.Want)
	}
	return s
}

func (e *TensorError) Unwrap() error { return e.Err }

// Component is one network's weights: the open files and the tensors the
// network uses (by checkpoint key). Tensor data aliases the files' read-only
// mappings and is valid until Model.Close.
type Component struct {
	Name    string // "text_encoder", "text_encoder_2", "unet" or "vae"
	Files   []*safetensors.File
	Tensors map[string]safetensors.Tensor
	Specs   []TensorSpec // the checked spec, in module order
}

// Tensor returns a tensor or an error naming the component and tensor.
func (c *Component) Tensor(name string) (safetensors.Tensor, error) {
	t, ok := c.Tensors[name]
	if !ok {
		return safetensors.Tensor{}, fmt.Errorf("model: %s: %w %q", c.Name, ErrMissing, name)
	}
	return t, nil
}

// Float32 returns a float32 copy of a tensor (converted from F16/BF16).
func (c *Component) Float32(name string) ([]float32, error) {
	t, err := c.Tensor(name)
	if err != nil {
		return nil, err
	}
	return t.Float32()
}

// Model is an opened pipeline folder.
type Model struct {
	Config                               *Config
	TextEncoder, TextEncoder2, UNet, VAE *Component

	closeOnce sync.Once
	closeErr  error
}

// Close releases every mapped file; it is idempotent.
func (m *Model) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		for _, c := range []*Component{m.TextEncoder, m.TextEncoder2, m.UNet, m.VAE} {
			if c != nil {
				errs = append(errs, closeFiles(c.Files))
			}
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

func closeFiles(fs []*safetensors.File) error {
	var errs []error
	for _, f := range fs {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// AcceptedDTypes are the weight dtypes Open accepts.
var AcceptedDTypes = []safetensors.DType{safetensors.F32, safetensors.F16, safetensors.BF16}

// Open loads the config and every component's weights from dir and checks
// them strictly against the specs: a missing, unexpected, wrong-shape or
// wrong-dtype tensor is a *TensorError naming file and tensor. Weights come
// from model.safetensors / diffusion_pytorch_model.safetensors, else the
// *.fp16.safetensors variant (sharded *.safetensors.index.json likewise).
// The VAE encoder (encoder.*, quant_conv) may be present in full or absent;
// it is checked but not loaded. text_model.embeddings.position_ids is
// tolerated.
func Open(dir string) (m *Model, err error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	m = &Model{Config: cfg}
	partial := m
	defer func() {
		if err != nil {
			partial.Close()
		}
	}()
	if m.TextEncoder, err = openComponent(dir, "text_encoder", "model", cfg.TextEncoder.Spec(""), cfg.TextEncoder.OptionalSpec(""), nil); err != nil {
		return nil, err
	}
	if m.TextEncoder2, err = openComponent(dir, "text_encoder_2", "model", cfg.TextEncoder2.Spec(""), cfg.TextEncoder2.OptionalSpec(""), nil); err != nil {
		return nil, err
	}
	if m.UNet, err = openComponent(dir, "unet", "diffusion_pytorch_model", cfg.UNet.Spec(), nil, nil); err != nil {
		return nil, err
	}
	if m.VAE, err = openComponent(dir, "vae", "diffusion_pytorch_model", cfg.VAE.DecoderSpec(), nil, cfg.VAE.EncoderSpec()); err != nil {
		return nil, err
	}
	return m, nil
}

// WeightFiles returns the safetensors files of a component folder, in the
// order Open uses: base.safetensors, base.safetensors.index.json,
// base.fp16.safetensors, base.fp16.safetensors.index.json (first that exists).
func WeightFiles(compDir, base string) ([]string, error) {
	for _, variant := range []string{"", ".fp16"} {
		single := filepath.Join(compDir, base+variant+".safetensors")
		if _, err := os.Stat(single); err == nil {
			return []string{single}, nil
		}
		index := single + ".index.json"
		if _, err := os.Stat(index); err == nil {
			return readIndex(index)
		}
	}
	return nil, fmt.Errorf("model: %s: %w (looked for %s.safetensors, %s.fp16.safetensors and their .index.json)", compDir, ErrNoWeights, base, base)
}

func readIndex(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("model: %s: %w: bad weight_map", path, ErrConfig)
	}
	seen := map[string]bool{}
	var files []string
	for _, f := range idx.WeightMap {
		if f != filepath.Base(f) || f == "" || f == "." || f == ".." {
			return nil, fmt.Errorf("model: %s: %w: shard name %q", path, ErrConfig, f)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, filepath.Join(filepath.Dir(path), f))
		}
	}
	sort.Strings(files)
	return files, nil
}

// deprecatedAttention maps the attention names of VAE checkpoints saved by
// older diffusers versions to the current ones (diffusers converts them on
// load the same way).
var deprecatedAttention = map[string]string{
	"query.weight": "to_q.weight", "query.bias": "to_q.bias",
	"key.weight": "to_k.weight", "key.bias": "to_k.bias",
	"value.weight": "to_v.weight", "value.bias": "to_v.bias",
	"proj_attn.weight": "to_out.0.weight", "proj_attn.bias": "to_out.0.bias",
}

// canonicalName returns the spec name of a checkpoint key: the VAE's
// deprecated attention names are renamed, everything else is kept.
func canonicalName(component, key string) string {
	if component != "vae" {
		return key
	}
	i := strings.Index(key, ".attentions.0.")
	if i < 0 {
		return key
	}
	head, tail := key[:i+len(".attentions.0.")], key[i+len(".attentions.0."):]
	if repl, ok := deprecatedAttention[tail]; ok {
		return head + repl
	}
	return key
}

type located struct {
	t    safetensors.Tensor
	file string
}

func openComponent(dir, name, base string, spec, optional, group []TensorSpec) (*Component, error) {
	paths, err := WeightFiles(filepath.Join(dir, name), base)
	if err != nil {
		return nil, err
	}
	c := &Component{Name: name, Specs: spec}
	all, err := c.openShards(paths)
	if err == nil {
		c.Tensors, err = checkTensors(name, paths[0], all, spec, optional, group)
	}
	if err != nil {
		closeFiles(c.Files)
		return nil, err
	}
	return c, nil
}

// openShards opens the component's files (into c.Files, also on error) and
// indexes their tensors by canonical name; a name in two files is an error.
func (c *Component) openShards(paths []string) (map[string]located, error) {
	all := map[string]located{}
	for _, p := range paths {
		f, err := safetensors.Open(p)
		if err != nil {
			return nil, fmt.Errorf("model: %s: %w", c.Name, err)
		}
		c.Files = append(c.Files, f)
		for _, fn := range f.Names() {
			n := canonicalName(c.Name, fn)
			if prev, dup := all[n]; dup {
				return nil, &TensorError{File: p, Tensor: fn, Err: ErrUnexpected, Got: "duplicate of " + n, Want: "only in " + prev.file}
			}
			t, _ := f.Tensor(fn)
			t.Name = n
			all[n] = located{t, p}
		}
	}
	return all, nil
}

func checkTensor(s TensorSpec, l located, anyDType bool) error {
	if !slices.Equal(l.t.Shape, s.Shape) {
		return &TensorError{File: l.file, Tensor: s.Name, Err: ErrShape, Got: fmt.Sprint(l.t.Shape), Want: fmt.Sprint(s.Shape)}
	}
	if !anyDType && !slices.Contains(AcceptedDTypes, l.t.DType) {
		return &TensorError{File: l.file, Tensor: s.Name, Err: ErrDType, Got: string(l.t.DType), Want: "F32, F16 or BF16"}
	}
	return nil
}

// checkTensors matches the file tensors against the specs: every spec tensor
// present (returned), optional ones checked if present (any dtype), the group
// complete or absent, nothing else.
func checkTensors(name, file0 string, all map[string]located, spec, optional, group []TensorSpec) (map[string]safetensors.Tensor, error) {
	out := make(map[string]safetensors.Tensor, len(spec))
	known := map[string]bool{}
	for _, s := range spec {
		known[s.Name] = true
		l, ok := all[s.Name]
		if !ok {
			return nil, &TensorError{File: file0, Tensor: s.Name, Err: ErrMissing, Want: fmt.Sprint(s.Shape)}
		}
		if err := checkTensor(s, l, false); err != nil {
			return nil, err
		}
		out[s.Name] = l.t
	}
	present, firstAbsent := 0, -1
	for i, s := range append(slices.Clip(optional), group...) {
		known[s.Name] = true
		l, ok := all[s.Name]
		inGroup := i >= len(optional)
		switch {
		case ok:
			if inGroup {
				present++
			}
			if err := checkTensor(s, l, !inGroup); err != nil {
				return nil, err
			}
		case inGroup && firstAbsent < 0:
			firstAbsent = i - len(optional)
		}
	}
	if present > 0 && firstAbsent >= 0 {
		s := group[firstAbsent]
		return nil, &TensorError{File: file0, Tensor: s.Name, Err: ErrMissing,
			Want: fmt.Sprintf("%v (the VAE encoder must be complete or absent)", s.Shape)}
	}
	var extra []string
	for n := range all {
		if !known[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, &TensorError{File: all[extra[0]].file, Tensor: extra[0], Err: ErrUnexpected,
			Got: fmt.Sprintf("%d tensor(s) not in the %s spec", len(extra), name)}
	}
	return out, nil
}
