package synth

import (
	"context"
	"io"
	"testing"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/safetensors"
)

// BenchmarkGenerate measures weight generation (no disk) for a 16M-element
// tensor; the sdxl-turbo preset has 3.47 G elements.
func BenchmarkGenerate(b *testing.B) {
	spec := model.TensorSpec{Name: "w.weight", Shape: []int64{4096, 4096}}
	for _, dt := range []safetensors.DType{safetensors.F16, safetensors.F32} {
		b.Run(string(dt), func(b *testing.B) {
			b.SetBytes(spec.NumElements() * dt.Size())
			for b.Loop() {
				if err := filler(context.Background(), 1, spec, dt)(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			rate := float64(spec.NumElements()) * float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate/1e6, "Melem/s")
			b.ReportMetric(3_468_837_867/rate, "s/sdxl-turbo")
		})
	}
}
