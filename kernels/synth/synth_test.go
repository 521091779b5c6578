package synth

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
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

// TestSeedsAndThreads: the same (seed, name) gives the same bytes whatever
// the thread count; another seed gives others (a whole second model with the
// same seed is compared in TestMainCLI).
func TestSeedsAndThreads(t *testing.T) {
	// Another seed changes the weights (checked on one tensor, not a whole model).
	spec := model.TensorSpec{Name: "conv_in.weight", Shape: []int64{16, 4, 3, 3}}
	var w7, w8 bytes.Buffer
	filler(context.Background(), 7, spec, safetensors.F32)(&w7)
	filler(context.Background(), 8, spec, safetensors.F32)(&w8)
	if w7.Len() != 16*4*9*4 || bytes.Equal(w7.Bytes(), w8.Bytes()) {
		t.Errorf("seeds 7 and 8: %d bytes, equal %v", w7.Len(), bytes.Equal(w7.Bytes(), w8.Bytes()))
	}
	// A tensor of several chunks is generated in parallel, identically
	// (chunks shrunk to 4K elements so that 7 chunks are cheap).
	defer func(c int64) { chunkElems = c }(chunkElems)
	chunkElems = 1 << 12
	big := model.TensorSpec{Name: "big.weight", Shape: []int64{7, chunkElems}}
	var b1, b2 bytes.Buffer
	filler(context.Background(), 1, big, safetensors.F16)(&b1)
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 3) // different batching
	filler(context.Background(), 1, big, safetensors.F16)(&b2)
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) - 3)
	if int64(b1.Len()) != 7*chunkElems*2 || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
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
	// The CLI writes the tiny preset with seed 7 again: byte-identical to tinyModel's.
	dir := filepath.Join(t.TempDir(), "m")
	out.Reset()
	errb.Reset()
	code := Main(context.Background(), []string{"--preset", "tiny", "--seed", "7", "--out", dir}, &out, &errb)
	if code != ExitOK || !strings.Contains(out.String(), "wrote "+dir) || !strings.Contains(errb.String(), "100.0%") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	a, b := readTree(t, tinyModel(t)), readTree(t, dir)
	if len(a) != len(b) || len(a) != 18 {
		t.Fatalf("%d vs %d files", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Errorf("%s differs between two runs with the same seed", k)
		}
	}
	errb.Reset()
	if code := Main(context.Background(), []string{"--out", dir}, &out, &errb); code != ExitError ||
		!strings.HasSuffix(errb.String(), "synth: error: "+dir+": destination already exists\n") {
		t.Errorf("existing out: exit %d, stderr %q", code, errb.String())
	}
}

// TestDTypes: F16 and BF16 weights are the F32 weights rounded to nearest even.
func TestDTypes(t *testing.T) {
	spec := model.TensorSpec{Name: "down_blocks.0.resnets.0.conv1.weight", Shape: []int64{8, 4, 3, 3}}
	var f32, f16, bf16 bytes.Buffer
	filler(context.Background(), 5, spec, safetensors.F32)(&f32)
	filler(context.Background(), 5, spec, safetensors.F16)(&f16)
	filler(context.Background(), 5, spec, safetensors.BF16)(&bf16)
	n := int(spec.NumElements())
	if f32.Len() != 4*n || f16.Len() != 2*n || bf16.Len() != 2*n {
		t.Fatalf("sizes %d %d %d", f32.Len(), f16.Len(), bf16.Len())
	}
	for i := 0; i < n; i++ {
		v := math.Float32frombits(binary.LittleEndian.Uint32(f32.Bytes()[4*i:]))
		if binary.LittleEndian.Uint16(f16.Bytes()[2*i:]) != safetensors.Float32ToHalf(v) ||
			binary.LittleEndian.Uint16(bf16.Bytes()[2*i:]) != safetensors.Float32ToBF16(v) {
			t.Fatalf("element %d (%g) differs across dtypes", i, v)
		}
	}
	n16, _ := Size(Options{Preset: "tiny", DType: safetensors.BF16})
	n32, _ := Size(Options{Preset: "tiny"})
	if n16 == 0 || 2*n16 != n32 {
		t.Errorf("tiny sizes BF16 %d, F32 %d", n16, n32)
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

// TestCopiedTokenizer: --tokenizer copies vocab.json/merges.txt (from a
// tokenizer folder or a model folder) under the preset's tokenizer configs,
// giving the reference ids (tokenizer_2 pads with "!" = 0).
func TestCopiedTokenizer(t *testing.T) {
	golden := os.Getenv("TDXL_GOLDEN_DIR")
	if golden == "" {
		golden = filepath.Join("..", "..", "..", "shared", "golden", "tiny-sdxl")
	}
	if _, err := os.Stat(filepath.Join(golden, "model", "tokenizer", "vocab.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("golden set missing: %v", err)
		}
		t.Skip("golden set missing")
	}
	for i, src := range []string{filepath.Join(golden, "model"), filepath.Join(golden, "model", "tokenizer_2")} {
		dir := t.TempDir()
		if err := writePreset(dir, "sdxl-turbo"); err != nil {
			t.Fatal(err)
		}
		if err := writeTokenizers(dir, src); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // loading the 1 MB vocabulary once is enough
			tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer_2"))
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Encode("wow!!!")[:7]; !slices.Equal(got, []int64{49406, 2781, 0, 0, 0, 49407, 0}) {
				t.Errorf("from %s: %v", src, got)
			}
		}
		want, _ := os.ReadFile(filepath.Join(golden, "model", "tokenizer", "merges.txt"))
		if got, _ := os.ReadFile(filepath.Join(dir, "tokenizer", "merges.txt")); !bytes.Equal(got, want) {
			t.Error("merges.txt not copied")
		}
	}
}
