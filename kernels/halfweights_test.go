package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tdxl/tdxl/kernels/safetensors"
)

// relDiff is ||a-b|| / ||b||.
func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// TestHalfPrecisionWeights loads the UNet from its *.fp16.safetensors variant and the VAE from a BF16
// file: both are converted to fp32 at load and give outputs close to (not equal to) the fp32 model.
func TestHalfPrecisionWeights(t *testing.T) {
	ref := sharedPipeline(t)
	dir := linkModel(t, "unet")
	if err := os.Remove(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	// VAE: a real copy rewritten as BF16 (round to nearest even).
	if err := os.Remove(filepath.Join(dir, "vae")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "vae"), os.DirFS(filepath.Join(testModelDir(t), "vae"))); err != nil {
		t.Fatal(err)
	}
	rewriteWeights(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"), func(ts []safetensors.WriteTensor) []safetensors.WriteTensor {
		for i := range ts {
			if ts[i].DType != safetensors.F32 {
				continue
			}
			n := len(ts[i].Data) / 4
			out := make([]byte, 2*n)
			for j := 0; j < n; j++ {
				u := binary.LittleEndian.Uint32(ts[i].Data[4*j:])
				u += 0x7fff + (u>>16)&1
				binary.LittleEndian.PutUint16(out[2*j:], uint16(u>>16))
			}
			ts[i].DType, ts[i].Data = safetensors.BF16, out
		}
		return ts
	})
	p, err := Open(dir, Options{Threads: 2})
	if err != nil {
		t.Fatalf("Open with fp16 UNet and bf16 VAE: %v", err)
	}
	defer p.Close()

	m := ref.m
	r := rand.New(rand.NewPCG(11, 12))
	sample, ehs, te := randVec(r, 4*8*8), randVec(r, m.textLen*m.crossDim), randVec(r, m.pooledDim)
	tids := []float32{64, 64, 0, 0, 64, 64}
	a, b := make([]float32, len(sample)), make([]float32, len(sample))
	ref.mu.Lock()
	err = ref.h.unetForward(sample, 1, 8, 8, 500, ehs, m.textLen, te, tids, a)
	ref.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.h.unetForward(sample, 1, 8, 8, 500, ehs, m.textLen, te, tids, b); err != nil {
		t.Fatal(err)
	}
	d := relDiff(b, a)
	t.Logf("fp16 UNet vs fp32: rel-L2 %.3g", d)
	if d == 0 || d > 1e-2 {
		t.Errorf("fp16 UNet vs fp32: rel-L2 %.3g, want in (0, 1e-2]", d)
	}
	lat := randVec(r, 4*8*8)
	da, db := make([]float32, 3*64*64), make([]float32, 3*64*64)
	ref.mu.Lock()
	err = ref.h.vaeDecode(lat, 1, 8, 8, nil, da)
	ref.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.h.vaeDecode(lat, 1, 8, 8, nil, db); err != nil {
		t.Fatal(err)
	}
	d = relDiff(db, da)
	t.Logf("bf16 VAE vs fp32: rel-L2 %.3g", d)
	if d == 0 || d > 5e-2 {
		t.Errorf("bf16 VAE vs fp32: rel-L2 %.3g, want in (0, 5e-2]", d)
	}
}
