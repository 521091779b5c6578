package kernels

import (
	"math"
	"testing"
)

// Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors).
func TestPhiloxKnownAnswers(t *testing.T) {
	cases := []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff},
			[4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0},
			[4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, c := range cases {
		if got := philox4x32(c.ctr, c.key); got != c.want {
			t.Errorf("philox(%x, %x) = %x, want %x", c.ctr, c.key, got, c.want)
		}
	}
}

func TestNormalNoiseStatistics(t *testing.T) {
	const n = 200000
	x := NormalNoise(12345, 3, n)
	var s, s2 float64
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite noise")
		}
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	mean, vr := s/n, s2/n-(s/n)*(s/n)
	if math.Abs(mean) > 0.01 || math.Abs(vr-1) > 0.02 {
		t.Errorf("mean %.4f variance %.4f, want ~0 and ~1", mean, vr)
	}
}

func TestNormalNoiseIndexed(t *testing.T) {
	a := NormalNoise(7, 1, 1000)
	b := NormalNoise(7, 1, 10) // a prefix is the same tensor's prefix: element i depends only on (seed, stream, i)
	for i := range b {
		if a[i] != b[i] {
			t.Fatalf("element %d differs between tensor sizes", i)
		}
	}
	c := NormalNoise(7, 2, 10)
	d := NormalNoise(8, 1, 10)
	same := 0
	for i := range b {
		if b[i] == c[i] || b[i] == d[i] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d values shared between different streams/seeds", same)
	}
}
