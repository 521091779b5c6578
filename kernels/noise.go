package kernels

import "math"

// Noise generator of tdxl (documented, platform-independent, thread-independent).
//
// Element i (0-based, NCHW order) of stream s for seed S is a standard normal built from one
// Philox4x32-10 block (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
//
//	key     = (uint32(S), uint32(uint64(S) >> 32))
//	counter = (uint32(i), uint32(i >> 32), uint32(s), 0)
//	(r0, r1, r2, r3) = philox4x32_10(counter, key)
//	u1 = ((r0<<32 | r1) >> 11 + 0.5) / 2^53        in (0, 1)
//	u2 = ((r2<<32 | r3) >> 11) / 2^53              in [0, 1)
//	z  = float32( sqrt(-2 ln u1) * cos(2π u2) )    (Box–Muller, float64 math, rounded once)
//
// Stream 0 is the initial latents, stream k+1 the ancestral noise of step k. Each element depends
// only on (S, s, i), so the tensor is the same whatever the thread count or machine.
const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85
)

func philox4x32(c [4]uint32, k [2]uint32) [4]uint32 {
	for r := 0; r < 10; r++ {
		p0 := uint64(philoxM0) * uint64(c[0])
		p1 := uint64(philoxM1) * uint64(c[2])
		hi0, lo0 := uint32(p0>>32), uint32(p0)
		hi1, lo1 := uint32(p1>>32), uint32(p1)
		c = [4]uint32{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0}
		k[0] += philoxW0
		k[1] += philoxW1
	}
	return c
}

// NormalNoise fills a tensor of n standard normals of stream `stream` for seed.
func NormalNoise(seed int64, stream uint32, n int) []float32 {
	out := make([]float32, n)
	key := [2]uint32{uint32(uint64(seed)), uint32(uint64(seed) >> 32)}
	const two53 = 1 << 53
	for i := range out {
		r := philox4x32([4]uint32{uint32(uint64(i)), uint32(uint64(i) >> 32), stream, 0}, key)
		a := (uint64(r[0])<<32 | uint64(r[1])) >> 11
		b := (uint64(r[2])<<32 | uint64(r[3])) >> 11
		u1 := (float64(a) + 0.5) / two53
		u2 := float64(b) / two53
		out[i] = float32(math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2))
	}
	return out
}
