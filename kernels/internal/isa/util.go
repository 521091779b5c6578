package isa

import (
	"math"
	"math/rand/v2"
)

// randSlice: n values uniform in [-scale, scale) (benchmark and test inputs).
func randSlice(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((r.Float64()*2 - 1) * scale)
	}
	return s
}

// f32bytes: little-endian bytes of s.
func f32bytes(s []float32) []byte {
	b := make([]byte, 4*len(s))
	for i, v := range s {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}
