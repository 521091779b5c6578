package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Reference ops vs float64 Go references on odd shapes (M, N, K not multiples of the 6x8 tile,
// K past the 256-wide K block, N past the 128-wide column tile), and 1 vs 2 threads bitwise.

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// relL2 = ||got - want|| / ||want||; NaN or Inf in got fails.
func relL2(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	var num, den float64
	for i := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			t.Fatalf("%s: non-finite value at %d", name, i)
		}
		num += (g - want[i]) * (g - want[i])
		den += want[i] * want[i]
	}
	if e := math.Sqrt(num / den); e > tol {
		t.Errorf("%s: rel-L2 %.3g > %.3g", name, e, tol)
	}
}

func TestOpLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][3]int{{1, 1, 1}, {7, 13, 5}, {37, 130, 300}, {100, 9, 600}, {6, 8, 256}} {
		M, N, K := s[0], s[1], s[2]
		w, b, x, res := randVec(r, N*K), randVec(r, N), randVec(r, M*K), randVec(r, M*N)
		want := make([]float64, M*N)
		for m := 0; m < M; m++ {
			for n := 0; n < N; n++ {
				acc := float64(b[n]) + float64(res[m*N+n])
				for k := 0; k < K; k++ {
					acc += float64(x[m*K+k]) * float64(w[n*K+k])
				}
				want[m*N+n] = acc
			}
		}
		y1, y2 := make([]float32, M*N), make([]float32, M*N)
		if err := opLinear(1, w, b, N, K, x, M, res, y1); err != nil {
			t.Fatal(err)
		}
		if err := opLinear(2, w, b, N, K, x, M, res, y2); err != nil {
			t.Fatal(err)
		}
		relL2(t, "linear", y1, want, 1e-6)
		if !slices.Equal(y1, y2) {
			t.Errorf("linear %v: 1 and 2 threads differ", s)
		}
	}
}

func TestOpConv2d(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type shape struct{ B, H, W, cin, cout, k, stride, pad int }
	for _, s := range []shape{{2, 5, 9, 300, 11, 3, 1, 1}, {1, 5, 9, 20, 17, 3, 2, 1}, {2, 4, 3, 3, 5, 1, 1, 0}, {1, 6, 6, 8, 9, 3, 2, 1}} {
		OH, OW := (s.H+2*s.pad-s.k)/s.stride+1, (s.W+2*s.pad-s.k)/s.stride+1
		w, b, x := randVec(r, s.cout*s.cin*s.k*s.k), randVec(r, s.cout), randVec(r, s.B*s.H*s.W*s.cin)
		want := make([]float64, s.B*OH*OW*s.cout)
		for bi := 0; bi < s.B; bi++ {
			for oy := 0; oy < OH; oy++ {
				for ox := 0; ox < OW; ox++ {
					for co := 0; co < s.cout; co++ {
						acc := float64(b[co])
						for ci := 0; ci < s.cin; ci++ {
							for ky := 0; ky < s.k; ky++ {
								for kx := 0; kx < s.k; kx++ {
									iy, ix := oy*s.stride-s.pad+ky, ox*s.stride-s.pad+kx
									if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
										continue
									}
									acc += float64(x[((bi*s.H+iy)*s.W+ix)*s.cin+ci]) * float64(w[((co*s.cin+ci)*s.k+ky)*s.k+kx])
								}
							}
						}
						want[((bi*OH+oy)*OW+ox)*s.cout+co] = acc
					}
				}
			}
		}
		y1, y2 := make([]float32, len(want)), make([]float32, len(want))
		if err := opConv2d(1, w, b, s.cout, s.cin, s.k, s.stride, s.pad, x, s.B, s.H, s.W, y1); err != nil {
			t.Fatal(err)
		}
		if err := opConv2d(2, w, b, s.cout, s.cin, s.k, s.stride, s.pad, x, s.B, s.H, s.W, y2); err != nil {
			t.Fatal(err)
		}
		relL2(t, "conv2d", y1, want, 1e-6)
		if !slices.Equal(y1, y2) {
			t.Errorf("conv2d %+v: 1 and 2 threads differ", s)
		}
	}
}

func TestOpAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	type shape struct {
		B, Tq, Tk, H, D int
		causal          bool
	}
	for _, s := range []shape{{2, 13, 9, 3, 10, false}, {1, 7, 7, 2, 8, true}, {1, 5, 77, 1, 64, false}, {2, 9, 9, 4, 3, true}} {
		ld := s.H * s.D
		q, k, v := randVec(r, s.B*s.Tq*ld), randVec(r, s.B*s.Tk*ld), randVec(r, s.B*s.Tk*ld)
		scale := float32(1 / math.Sqrt(float64(s.D)))
		want := make([]float64, s.B*s.Tq*ld)
		for b := 0; b < s.B; b++ {
			for h := 0; h < s.H; h++ {
				for i := 0; i < s.Tq; i++ {
					nk := s.Tk
					if s.causal {
						nk = min(s.Tk, i+1)
					}
					sc := make([]float64, nk)
					mx := math.Inf(-1)
					for j := 0; j < nk; j++ {
						for d := 0; d < s.D; d++ {
							sc[j] += float64(q[(b*s.Tq+i)*ld+h*s.D+d]) * float64(k[(b*s.Tk+j)*ld+h*s.D+d])
						}
						sc[j] *= float64(scale)
						mx = math.Max(mx, sc[j])
					}
					var sum float64
					for j := range sc {
						sc[j] = math.Exp(sc[j] - mx)
						sum += sc[j]
					}
					for d := 0; d < s.D; d++ {
						var acc float64
						for j := range sc {
							acc += sc[j] / sum * float64(v[(b*s.Tk+j)*ld+h*s.D+d])
						}
						want[(b*s.Tq+i)*ld+h*s.D+d] = acc
					}
				}
			}
		}
		o1, o2 := make([]float32, len(want)), make([]float32, len(want))
		if err := opAttention(1, q, k, v, o1, s.B, s.Tq, s.Tk, s.H, s.D, scale, s.causal); err != nil {
			t.Fatal(err)
		}
		if err := opAttention(2, q, k, v, o2, s.B, s.Tq, s.Tk, s.H, s.D, scale, s.causal); err != nil {
			t.Fatal(err)
		}
		relL2(t, "attention", o1, want, 1e-6)
		if !slices.Equal(o1, o2) {
			t.Errorf("attention %+v: 1 and 2 threads differ", s)
		}
	}
}

func TestOpGroupNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, silu := range []bool{false, true} {
		B, HW, C, G := 2, 1100, 12, 3
		x, gamma, beta := randVec(r, B*HW*C), randVec(r, C), randVec(r, C)
		for i := range x {
			x[i] = 3 + 2*x[i] // non-zero mean
		}
		const eps = 1e-6
		want := make([]float64, len(x))
		cg := C / G
		for b := 0; b < B; b++ {
			for g := 0; g < G; g++ {
				var s, s2 float64
				for p := 0; p < HW; p++ {
					for c := 0; c < cg; c++ {
						s += float64(x[(b*HW+p)*C+g*cg+c])
					}
				}
				n := float64(HW * cg)
				mean := s / n
				for p := 0; p < HW; p++ {
					for c := 0; c < cg; c++ {
						d := float64(x[(b*HW+p)*C+g*cg+c]) - mean
						s2 += d * d
					}
				}
				rstd := 1 / math.Sqrt(s2/n+eps)
				for p := 0; p < HW; p++ {
					for c := 0; c < cg; c++ {
						ch := g*cg + c
						v := (float64(x[(b*HW+p)*C+ch])-mean)*rstd*float64(gamma[ch]) + float64(beta[ch])
						if silu {
							v = v / (1 + math.Exp(-v))
						}
						want[(b*HW+p)*C+ch] = v
					}
				}
			}
		}
		y1, y2 := make([]float32, len(x)), make([]float32, len(x))
		if err := opGroupNorm(1, x, y1, B, HW, C, G, eps, gamma, beta, silu); err != nil {
			t.Fatal(err)
		}
		if err := opGroupNorm(2, x, y2, B, HW, C, G, eps, gamma, beta, silu); err != nil {
			t.Fatal(err)
		}
		relL2(t, "group_norm", y1, want, 1e-6)
		if !slices.Equal(y1, y2) {
			t.Errorf("group_norm silu=%v: 1 and 2 threads differ", silu)
		}
	}
	if err := opGroupNorm(1, make([]float32, 10), make([]float32, 10), 1, 2, 5, 2, 1e-5, nil, nil, false); err == nil {
		t.Error("group_norm with channels not divisible by groups succeeded")
	}
}
