package kernels

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/safetensors"
)

// The unit tests use the golden set's tiny model (random weights, real layout).

var (
	sharedOnce sync.Once
	sharedPipe *Pipeline
	sharedErr  error
)

func testModelDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(goldenDir(t), "model")
}

// sharedPipeline is one 2-thread pipeline reused by tests that only generate.
func sharedPipeline(t *testing.T) *Pipeline {
	t.Helper()
	dir := testModelDir(t)
	sharedOnce.Do(func() { sharedPipe, sharedErr = Open(dir, Options{Threads: 2}) })
	if sharedErr != nil {
		t.Fatalf("Open: %v", sharedErr)
	}
	return sharedPipe
}

func smallRequest(seed int64) Request {
	return Request{Prompts: []string{"a photo of a cat"}, Width: 64, Height: 48, Steps: 2, Batch: 2, Seed: seed}
}

func pixels(r *Result) []byte {
	var b []byte
	for _, im := range r.Images {
		b = append(b, im.Pix...)
	}
	return b
}

func TestGenerateShapesAndInfo(t *testing.T) {
	p := sharedPipeline(t)
	var calls [][2]int
	req := smallRequest(7)
	req.Progress = func(done, total int) { calls = append(calls, [2]int{done, total}) }
	res, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d images, want 2", len(res.Images))
	}
	for _, im := range res.Images {
		if b := im.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
			t.Errorf("image bounds %v, want 64x48", b)
		}
		for i := 3; i < len(im.Pix); i += 4 {
			if im.Pix[i] != 255 {
				t.Fatalf("alpha %d at %d, want 255", im.Pix[i], i)
			}
		}
	}
	if len(calls) != 2 || calls[0] != [2]int{1, 2} || calls[1] != [2]int{2, 2} {
		t.Errorf("progress calls %v, want [[1 2] [2 2]]", calls)
	}
	if len(res.Timings.UNetSteps) != 2 || res.Timings.Total <= 0 || res.Timings.Total < res.Timings.VAE {
		t.Errorf("timings %+v", res.Timings)
	}
	info := p.Info()
	if info.Threads != 2 || info.ISA == "" || info.Model == "" {
		t.Errorf("info %+v", info)
	}
}

func TestSeedReproducible(t *testing.T) {
	p := sharedPipeline(t)
	a, err := p.Generate(context.Background(), smallRequest(42))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Generate(context.Background(), smallRequest(42))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Generate(context.Background(), smallRequest(43))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pixels(a), pixels(b)) {
		t.Error("same seed gave different images")
	}
	if bytes.Equal(pixels(a), pixels(c)) {
		t.Error("different seeds gave identical images")
	}
	if bytes.Equal(a.Images[0].Pix, a.Images[1].Pix) {
		t.Error("the two batch elements are identical (noise not per element)")
	}
}

func TestThreadCountIndependent(t *testing.T) {
	p2 := sharedPipeline(t)
	p1, err := Open(testModelDir(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	if p1.Info().Threads != 1 {
		t.Fatalf("threads %d, want 1", p1.Info().Threads)
	}
	req := smallRequest(5)
	a, err := p1.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p2.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// Each output element is reduced in a fixed order by one thread: bitwise equal, not just close.
	if !bytes.Equal(pixels(a), pixels(b)) {
		t.Error("1 and 2 threads gave different images")
	}
}

func TestCancelBetweenSteps(t *testing.T) {
	p := sharedPipeline(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := smallRequest(1)
	req.Steps = 4
	steps := 0
	req.Progress = func(done, total int) {
		steps = done
		if done == 1 {
			cancel()
		}
	}
	_, err := p.Generate(ctx, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if steps != 1 {
		t.Errorf("%d steps ran after cancel at step 1", steps)
	}
	// The pipeline stays usable.
	if _, err := p.Generate(context.Background(), smallRequest(1)); err != nil {
		t.Fatalf("Generate after a cancelled one: %v", err)
	}
}

func TestCancelInsideLayers(t *testing.T) {
	p := sharedPipeline(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.m
	n := m.latentChannels * 8 * 8
	sample := make([]float32, n)
	ehs := make([]float32, m.textLen*m.crossDim)
	te := make([]float32, m.pooledDim)
	tids := []float32{64, 64, 0, 0, 64, 64}
	out := make([]float32, n)
	p.h.cancel(true)
	err := p.h.unetForward(sample, 1, 8, 8, 999, ehs, m.textLen, te, tids, out)
	p.h.cancel(false)
	if !errors.Is(err, errCancelled) {
		t.Fatalf("unet with the cancel flag set: err = %v, want errCancelled", err)
	}
	if err := p.h.unetForward(sample, 1, 8, 8, 999, ehs, m.textLen, te, tids, out); err != nil {
		t.Fatalf("unet after re-arming: %v", err)
	}
}

func TestCancelledContextBeforeStart(t *testing.T) {
	p := sharedPipeline(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Generate(ctx, smallRequest(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestBadRequests(t *testing.T) {
	p := sharedPipeline(t)
	for name, mod := range map[string]func(*Request){
		"width not multiple of 8": func(r *Request) { r.Width = 60 },
		"zero height":             func(r *Request) { r.Height = 0 },
		"too large":               func(r *Request) { r.Width = MaxImageSide + 8 },
		"zero steps":              func(r *Request) { r.Steps = 0 },
		"too many steps":          func(r *Request) { r.Steps = MaxSteps + 1 },
		"zero batch":              func(r *Request) { r.Batch = 0 },
		"too many pixels":         func(r *Request) { r.Width, r.Height, r.Batch = 2048, 2048, 2 },
		"prompt count":            func(r *Request) { r.Prompts = []string{"a", "b", "c"} },
		"no prompt":               func(r *Request) { r.Prompts = nil },
		"init latents size":       func(r *Request) { r.InitLatents = make([]float32, 3) },
		"step noise count":        func(r *Request) { r.StepNoise = [][]float32{make([]float32, 2*4*6*8)} },
	} {
		req := smallRequest(1)
		mod(&req)
		if _, err := p.Generate(context.Background(), req); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}
}

func TestCloseTwiceAndGenerateAfterClose(t *testing.T) {
	p, err := Open(testModelDir(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Generate(context.Background(), smallRequest(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Generate after Close: err = %v, want ErrClosed", err)
	}
}

// linkModel makes a copy of the model folder in which every entry is a symlink except `replace`,
// which is copied so that the test can damage it.
func linkModel(t *testing.T, replace string) string {
	t.Helper()
	src := testModelDir(t)
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if e.Name() != replace {
			if err := os.Symlink(s, d); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.CopyFS(d, os.DirFS(s)); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewriteWeights rewrites dir/rel with the tensors edit returns.
func rewriteWeights(t *testing.T, path string, edit func([]safetensors.WriteTensor) []safetensors.WriteTensor) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.WriteTensor
	for _, n := range f.Names() {
		tt, _ := f.Tensor(n)
		ts = append(ts, safetensors.WriteTensor{Name: n, DType: tt.DType, Shape: tt.Shape, Data: bytes.Clone(tt.Data)})
	}
	f.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(path, edit(ts), nil); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrorsPropagate(t *testing.T) {
	const vaeFile = "vae/diffusion_pytorch_model.safetensors"
	const victim = "decoder.conv_in.weight"
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		is     error  // sentinel expected through errors.Is (nil: any error)
		want   string // substring of the message
	}{
		{"missing tensor", func(t *testing.T, dir string) {
			rewriteWeights(t, filepath.Join(dir, vaeFile), func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
				var out []safetensors.WriteTensor
				for _, x := range ts {
					if x.Name != victim {
						out = append(out, x)
					}
				}
				return out
			})
		}, model.ErrMissing, victim},
		{"unexpected tensor", func(t *testing.T, dir string) {
			rewriteWeights(t, filepath.Join(dir, vaeFile), func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
				return append(ts, safetensors.WriteTensor{Name: "decoder.bogus.weight", DType: safetensors.F32, Shape: []int64{1}, Data: make([]byte, 4)})
			})
		}, model.ErrUnexpected, "decoder.bogus.weight"},
		{"wrong shape", func(t *testing.T, dir string) {
			rewriteWeights(t, filepath.Join(dir, vaeFile), func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
				for i := range ts {
					if ts[i].Name == "decoder.conv_in.bias" {
						ts[i].Shape = []int64{ts[i].Shape[0] / 2, 2}
					}
				}
				return ts
			})
		}, model.ErrShape, "decoder.conv_in.bias"},
		{"wrong dtype", func(t *testing.T, dir string) {
			rewriteWeights(t, filepath.Join(dir, vaeFile), func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
				for i := range ts {
					if ts[i].Name == "decoder.conv_in.bias" {
						ts[i].DType = safetensors.I32
					}
				}
				return ts
			})
		}, model.ErrDType, "decoder.conv_in.bias"},
		{"truncated file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, vaeFile)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()-100); err != nil {
				t.Fatal(err)
			}
		}, safetensors.ErrOffsets, "diffusion_pytorch_model.safetensors"},
		{"truncated header", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, vaeFile), 4); err != nil {
				t.Fatal(err)
			}
		}, safetensors.ErrTruncated, "diffusion_pytorch_model.safetensors"},
		{"bad json", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "vae", "config.json"), []byte(`{"block_out_channels": [8,`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, "config.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := linkModel(t, "vae")
			c.damage(t, dir)
			p, err := Open(dir, Options{Threads: 1})
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded on a damaged model")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want errors.Is %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want it to name %q", err, c.want)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope"), Options{}); err == nil {
		t.Error("Open of a missing folder succeeded")
	}
	if _, err := Open(testModelDir(t), Options{Threads: -1}); err == nil {
		t.Error("Open with Threads -1 succeeded")
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedPipe != nil {
		sharedPipe.Close()
	}
	os.Exit(code)
}

func TestConcurrentGenerateSerialised(t *testing.T) {
	p := sharedPipeline(t)
	var wg sync.WaitGroup
	results := make([][]byte, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Generate(context.Background(), smallRequest(9))
			if err == nil {
				results[i] = pixels(res)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], results[0]) {
			t.Errorf("goroutine %d got a different image", i)
		}
	}
}
