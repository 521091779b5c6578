package synth

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/safetensors"
	"github.com/tdxl/tdxl/kernels/tokenizer"
)

var (
	tinyOnce sync.Once
	tinyDir  string
	tinyErr  error
)

// tinyModel writes the tiny preset once per test binary (seed 7).
func tinyModel(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		d, err := os.MkdirTemp("", "tdxl-synth-test-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyDir = filepath.Join(d, "tiny")
		tinyErr = Write(context.Background(), tinyDir, Options{Preset: "tiny", Seed: 7})
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyDir != "" {
		os.RemoveAll(filepath.Dir(tinyDir))
	}
	os.Exit(code)
}

// TestTinyRoundTrip: the tiny preset loads through model.Open (strict) and
// tokenizer.Load, with the preset's dtype and sane values.
func TestTinyRoundTrip(t *testing.T) {
	dir := tinyModel(t)
	m, err := model.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.UNet.BlockOutChannels[2] != 48 || m.Config.TextEncoder2.HiddenSize != 40 {
		t.Errorf("tiny config %+v", m.Config.UNet.BlockOutChannels)
	}
	for _, c := range []*model.Component{m.TextEncoder, m.TextEncoder2, m.UNet, m.VAE} {
		for name, tt := range c.Tensors {
			if tt.DType != safetensors.F32 {
				t.Fatalf("%s %s: dtype %s", c.Name, name, tt.DType)
			}
		}
	}
	w, _ := m.UNet.Float32("conv_in.weight") // fan_in 4*3*3 = 36: |w| < 1/6
	b, _ := m.UNet.Float32("conv_in.bias")
	g, _ := m.UNet.Float32("conv_norm_out.weight")
	var absMax, sum float64
	for _, v := range w {
		absMax = max(absMax, float64(abs(v)))
		sum += float64(v)
	}
	if absMax >= 1.0/6 || absMax < 0.1 || sum/float64(len(w)) > 0.05 {
		t.Errorf("conv_in.weight max %g mean %g", absMax, sum/float64(len(w)))
	}
	if slices.ContainsFunc(b, func(v float32) bool { return v != 0 }) || slices.ContainsFunc(g, func(v float32) bool { return v != 1 }) {
		t.Error("bias not 0 or norm weight not 1")
	}
	for _, name := range []string{"tokenizer", "tokenizer_2"} {
		tok, err := tokenizer.Load(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode("A panda listening to music! highly detailed, 8k.")
		if len(ids) != 77 || ids[0] != 49406 || tok.VocabSize() != 49408 {
			t.Fatalf("%s: %v (vocab %d)", name, ids, tok.VocabSize())
		}
		if want := map[string]int64{"tokenizer": 49407, "tokenizer_2": 0}[name]; tok.PadID() != want {
			t.Errorf("%s pad %d", name, tok.PadID())
		}
		// Words merge into generated pieces (not single bytes), and every
		// piece is in the vocabulary (not the unknown token).
		toks, pids := tok.Tokenize("panda"), tok.EncodeUntruncated("panda")
		if strings.Join(toks, "") != "panda</w>" || len(toks) >= 5 || slices.Contains(pids[1:len(pids)-1], 49407) {
			t.Errorf("%s: panda -> %q %v", name, toks, pids)
		}
	}
	// No temp folder left next to it.
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 {
		t.Errorf("%d entries next to the model", len(ents))
	}
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSameSeedSameBytes(t *testing.T) {
	a := readTree(t, tinyModel(t))
	dir := filepath.Join(t.TempDir(), "again")
	if err := Write(context.Background(), dir, Options{Preset: "tiny", Seed: 7}); err != nil {
		t.Fatal(err)
	}
	b := readTree(t, dir)
	if len(a) != len(b) || len(a) != 18 {
		t.Fatalf("%d vs %d files", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Errorf("%s differs between two runs with the same seed", k)
		}
	}
	// Another seed changes the weights (checked on one tensor, not a whole model).
	spec := model.TensorSpec{Name: "conv_in.weight", Shape: []int64{16, 4, 3, 3}}
	var w7, w8 bytes.Buffer
	filler(context.Background(), 7, spec, safetensors.F32)(&w7)
	filler(context.Background(), 8, spec, safetensors.F32)(&w8)
	if w7.Len() != 16*4*9*4 || bytes.Equal(w7.Bytes(), w8.Bytes()) {
		t.Errorf("seeds 7 and 8: %d bytes, equal %v", w7.Len(), bytes.Equal(w7.Bytes(), w8.Bytes()))
	}
	// A tensor larger than one chunk is generated in parallel, identically.
	big := model.TensorSpec{Name: "big.weight", Shape: []int64{3, chunkElems}}
	var b1, b2 bytes.Buffer
	filler(context.Background(), 1, big, safetensors.F16)(&b1)
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 3) // different batching
	filler(context.Background(), 1, big, safetensors.F16)(&b2)
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) - 3)
	if b1.Len() != 3*chunkElems*2 || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Errorf("chunked tensor: %d bytes, depends on threads: %v", b1.Len(), !bytes.Equal(b1.Bytes(), b2.Bytes()))
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Write(ctx, dir, Options{Preset: "tiny", Seed: 1, Progress: func(Progress) {
		calls++
		if calls == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("left %d entries behind", len(ents))
	}
}

func TestWriteRefusals(t *testing.T) {
	dir := t.TempDir() // exists
	if err := Write(context.Background(), dir, Options{Preset: "tiny"}); !errors.Is(err, ErrExists) {
		t.Errorf("existing dir: %v", err)
	}
	nd := filepath.Join(dir, "x")
	for _, o := range []Options{{Preset: "huge"}, {Preset: ""}, {Preset: "tiny", DType: "I8"}, {Preset: "../presets/tiny"}} {
		if err := Write(context.Background(), nd, o); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := Write(context.Background(), nd, Options{Preset: "tiny", Tokenizer: filepath.Join(dir, "none")}); err == nil {
		t.Error("missing tokenizer folder accepted")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %d entries behind", len(ents))
	}
}

// TestSDXLTurboSize checks the full preset's size from its specs without
// writing it: 3,468,837,867 parameters (UNet 2,567,463,684 + CLIP-L 123,060,480
// + bigG 694,659,840 + VAE 83,653,863), 2 bytes each at F16.
func TestSDXLTurboSize(t *testing.T) {
	n, err := Size(Options{Preset: "sdxl-turbo"})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*3_468_837_867 {
		t.Errorf("sdxl-turbo F16: %d bytes", n)
	}
	n32, _ := Size(Options{Preset: "sdxl-turbo", DType: safetensors.F32})
	if n32 != 2*n {
		t.Errorf("F32 %d vs F16 %d", n32, n)
	}
	t.Logf("sdxl-turbo: %.2f GB at F16", float64(n)/1e9)
}

func TestMainCLI(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--preset", "nope", "--out", filepath.Join(t.TempDir(), "m")}, &out, &errb); code != ExitUsage {
		t.Errorf("bad preset: exit %d", code)
	}
	if code := Main(context.Background(), []string{"--seed", "x"}, &out, &errb); code != ExitUsage {
		t.Errorf("bad seed: exit %d", code)
	}
	if code := Main(context.Background(), nil, &out, &errb); code != ExitUsage {
		t.Errorf("no --out: exit %d", code)
	}
	dir := filepath.Join(t.TempDir(), "m")
	out.Reset()
	errb.Reset()
	code := Main(context.Background(), []string{"--preset", "tiny", "--seed", "3", "--out", dir, "--dtype", "bf16", "--tokenizer", tinyModel(t)}, &out, &errb)
	if code != ExitOK || !strings.Contains(out.String(), "wrote "+dir) || !strings.Contains(errb.String(), "100.0%") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	m, err := model.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.UNet.Tensors["conv_in.weight"].DType != safetensors.BF16 {
		t.Error("dtype flag ignored")
	}
	if code := Main(context.Background(), []string{"--out", dir}, &out, &errb); code != ExitError {
		t.Errorf("existing out: exit %d", code)
	}
}

func TestGeneratedVocab(t *testing.T) {
	v, m, err := generateVocab(clipVocabSize)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(m), "\n"); n != 1+48894 {
		t.Errorf("%d merge lines", n)
	}
	if !bytes.Contains(v, []byte(`"\u003c|startoftext|\u003e":49406`)) && !bytes.Contains(v, []byte(`"<|startoftext|>":49406`)) {
		t.Error("BOS id")
	}
	if _, _, err := generateVocab(100); err == nil {
		t.Error("size 100 accepted")
	}
}
