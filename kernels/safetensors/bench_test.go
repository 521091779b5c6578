package safetensors

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkFloat32 converts a 4M-element tensor of each dtype to float32 and
// reports the rate in elements per second.
func BenchmarkFloat32(b *testing.B) {
	const n = 1 << 22
	for _, dt := range []DType{F32, F16, BF16} {
		b.Run(string(dt), func(b *testing.B) {
			data := make([]byte, n*int(dt.Size()))
			r := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			t := Tensor{Info: Info{Name: "x", DType: dt, Shape: []int64{n}, End: int64(len(data))}, Data: data}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := t.Float32(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}
