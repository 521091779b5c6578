package isa

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

type convCase struct {
	b, h, w, cin, cout, k, stride, pad int
	bias, res                          bool
	act                                Act
}

var convCases = []convCase{
	{2, 5, 7, 3, 5, 3, 1, 1, true, false, ActNone},
	{1, 9, 8, 16, 33, 3, 2, 1, true, true, ActNone},  // downsample
	{1, 6, 5, 40, 19, 3, 1, 1, false, true, ActSiLU}, // K = 360 > kc: chunk spans taps (one chunk where K <= 1.5 kc)
	{1, 5, 6, 56, 21, 3, 1, 1, true, true, ActNone},  // K = 504 > 1.5 x 256: chunks span taps on every level
	{1, 4, 4, 8, 12, 1, 1, 0, true, false, ActNone},  // 1x1 = plain GEMM
	{2, 7, 6, 5, 7, 3, 2, 0, false, false, ActGELU},  // stride 2 without padding
}

// refConv: direct NHWC convolution in float64 on the weights as decoded ([cout][cin][kh][kw]).
func refConv(x []float32, w []float32, c convCase, bias, res []float32) ([]float64, int, int) {
	ho, wo := ConvOut(c.h, c.k, c.stride, c.pad), ConvOut(c.w, c.k, c.stride, c.pad)
	out := make([]float64, c.b*ho*wo*c.cout)
	for bi := 0; bi < c.b; bi++ {
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				for co := 0; co < c.cout; co++ {
					var s float64
					for ky := 0; ky < c.k; ky++ {
						iy := oy*c.stride - c.pad + ky
						if iy < 0 || iy >= c.h {
							continue
						}
						for kx := 0; kx < c.k; kx++ {
							ix := ox*c.stride - c.pad + kx
							if ix < 0 || ix >= c.w {
								continue
							}
							for ci := 0; ci < c.cin; ci++ {
								s += float64(x[((bi*c.h+iy)*c.w+ix)*c.cin+ci]) *
									float64(w[((co*c.cin+ci)*c.k+ky)*c.k+kx])
							}
						}
					}
					o := ((bi*ho+oy)*wo+ox)*c.cout + co
					if bias != nil {
						s += float64(bias[co])
					}
					if res != nil {
						s += float64(res[o])
					}
					out[o] = applyAct(s, c.act)
				}
			}
		}
	}
	return out, ho, wo
}

func TestConv2D(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for ci, c := range convCases {
			for _, fp32 := range []bool{true, false} {
				name := fmt.Sprintf("%v/case%d/fp32=%v", l, ci, fp32)
				x := randSlice(r, c.b*c.h*c.w*c.cin, 1)
				wf := randSlice(r, c.cout*c.cin*c.k*c.k, 1/math.Sqrt(float64(c.cin*c.k*c.k)))
				var bias, res []float32
				if c.bias {
					bias = randSlice(r, c.cout, 0.5)
				}
				ho, wo := ConvOut(c.h, c.k, c.stride, c.pad), ConvOut(c.w, c.k, c.stride, c.pad)
				if c.res {
					res = randSlice(r, c.b*ho*wo*c.cout, 1)
				}
				want, _, _ := refConv(x, wf, c, bias, res)
				w, err := ctx.PackConv(f32bytes(wf), F32, c.cout, c.cin, c.k, c.k, fp32)
				if err != nil {
					t.Fatalf("%s: pack: %v", name, err)
				}
				y := make([]float32, c.b*ho*wo*c.cout)
				if err := ctx.Conv2D(w, c.b, c.h, c.w, x, c.stride, c.pad, y, bias, res, c.act); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if e, tol := relL2(y, want, 1, len(want), len(want)), tolFor(w, fp32); !(e <= tol) {
					t.Errorf("%s (kernel %v): rel L2 %.3g > %.3g", name, w.Level(), e, tol)
				}
				w.Free()
			}
		}
	}
}

type attnCase struct {
	b, tq, tk, heads, d, pad int
	causal                   bool
}

var attnCases = []attnCase{
	{2, 37, 53, 3, 24, 0, false},
	{1, 77, 77, 2, 64, 5, true},    // CLIP: causal self-attention
	{1, 100, 130, 1, 70, 3, false}, // d not a multiple of 16 and > 64
	{2, 19, 77, 2, 40, 0, false},   // cross-attention shape: Tq != Tk
	{1, 50, 30, 1, 16, 1, true},    // causal with Tq > Tk: first rows see nothing
}

func refAttention(a AttentionArgs) []float64 {
	hd := a.Heads * a.D
	out := make([]float64, a.B*a.Tq*hd)
	s := make([]float64, a.Tk)
	for bi := 0; bi < a.B; bi++ {
		for h := 0; h < a.Heads; h++ {
			for i := 0; i < a.Tq; i++ {
				kend := a.Tk
				if a.Causal {
					kend = min(a.Tk, i+(a.Tk-a.Tq)+1)
				}
				if kend <= 0 {
					continue // no visible key: output row is zero
				}
				mx := math.Inf(-1)
				for j := 0; j < kend; j++ {
					var d float64
					for c := 0; c < a.D; c++ {
						d += float64(a.Q[(bi*a.Tq+i)*a.LdQ+h*a.D+c]) * float64(a.K[(bi*a.Tk+j)*a.LdK+h*a.D+c])
					}
					s[j] = d * float64(a.Scale)
					mx = math.Max(mx, s[j])
				}
				var l float64
				for j := 0; j < kend; j++ {
					s[j] = math.Exp(s[j] - mx)
					l += s[j]
				}
				for c := 0; c < a.D; c++ {
					var o float64
					for j := 0; j < kend; j++ {
						o += s[j] * float64(a.V[(bi*a.Tk+j)*a.LdV+h*a.D+c])
					}
					out[(bi*a.Tq+i)*hd+h*a.D+c] = o / l
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for ci, c := range attnCases {
			name := fmt.Sprintf("%v/case%d", l, ci)
			hd := c.heads * c.d
			ld := hd + c.pad
			a := AttentionArgs{B: c.b, Tq: c.tq, Tk: c.tk, Heads: c.heads, D: c.d,
				Q: randSlice(r, c.b*c.tq*ld, 1), K: randSlice(r, c.b*c.tk*ld, 1), V: randSlice(r, c.b*c.tk*ld, 1),
				O: make([]float32, c.b*c.tq*ld), LdQ: ld, LdK: ld, LdV: ld, LdO: ld,
				Scale: float32(1 / math.Sqrt(float64(c.d))), Causal: c.causal}
			for i := range a.O {
				a.O[i] = float32(math.NaN()) // every valid output must be written
			}
			want := refAttention(a)
			if err := ctx.Attention(a); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if e := relL2(a.O, want, c.b*c.tq, hd, ld); !(e <= tolF32) {
				t.Errorf("%s: rel L2 %.3g > %.3g", name, e, tolF32)
			}
		}
	}
	ctx := newCtx(t, 1, LevelRef)
	if err := ctx.Attention(AttentionArgs{B: 1, Tq: 2, Tk: 2, Heads: 1, D: 4, Q: make([]float32, 7),
		K: make([]float32, 8), V: make([]float32, 8), O: make([]float32, 8), LdQ: 4, LdK: 4, LdV: 4, LdO: 4,
		Scale: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("short q: got %v, want ErrInvalid", err)
	}
}

func refGroupNorm(b, hw, c, groups int, eps float64, x, gamma, beta []float32, silu bool) []float64 {
	out := make([]float64, b*hw*c)
	cg := c / groups
	for bi := 0; bi < b; bi++ {
		for g := 0; g < groups; g++ {
			var s, ss float64
			for p := 0; p < hw; p++ {
				for j := g * cg; j < (g+1)*cg; j++ {
					v := float64(x[(bi*hw+p)*c+j])
					s += v
					ss += v * v
				}
			}
			n := float64(hw * cg)
			mean := s / n
			rstd := 1 / math.Sqrt(ss/n-mean*mean+eps)
			for p := 0; p < hw; p++ {
				for j := g * cg; j < (g+1)*cg; j++ {
					i := (bi*hw+p)*c + j
					v := (float64(x[i])-mean)*rstd*float64(gamma[j]) + float64(beta[j])
					if silu {
						v = v / (1 + math.Exp(-v))
					}
					out[i] = v
				}
			}
		}
	}
	return out
}

func TestGroupNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	cases := []struct {
		b, hw, c, groups int
		silu             bool
	}{{2, 33, 48, 8, true}, {1, 100, 64, 32, false}, {1, 7, 20, 4, true}, {3, 64, 320, 32, true}}
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for ci, c := range cases {
			x := randSlice(r, c.b*c.hw*c.c, 2)
			for i := range x {
				x[i] += 3 // an offset, so the variance is not trivially E[x^2]
			}
			gamma, beta := randSlice(r, c.c, 1), randSlice(r, c.c, 1)
			want := refGroupNorm(c.b, c.hw, c.c, c.groups, 1e-5, x, gamma, beta, c.silu)
			y := x // in place
			if err := ctx.GroupNorm(c.b, c.hw, c.c, c.groups, 1e-5, x, gamma, beta, y, c.silu); err != nil {
				t.Fatalf("%v/case%d: %v", l, ci, err)
			}
			if e := relL2(y, want, 1, len(want), len(want)); !(e <= tolF32) {
				t.Errorf("%v/case%d: rel L2 %.3g > %.3g", l, ci, e, tolF32)
			}
		}
	}
	ctx := newCtx(t, 1, LevelRef)
	x := make([]float32, 12)
	if err := ctx.GroupNorm(1, 2, 6, 4, 1e-5, x, x[:6], x[:6], x, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("groups not dividing channels: got %v, want ErrInvalid", err)
	}
}

func TestLayerNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for _, c := range []struct{ m, ch int }{{1, 1}, {77, 768}, {13, 33}, {5, 1280}} {
			x := randSlice(r, c.m*c.ch, 2)
			for i := range x {
				x[i] += 5
			}
			gamma, beta := randSlice(r, c.ch, 1), randSlice(r, c.ch, 1)
			want := make([]float64, c.m*c.ch)
			for i := 0; i < c.m; i++ {
				var s, ss float64
				for j := 0; j < c.ch; j++ {
					s += float64(x[i*c.ch+j])
				}
				mean := s / float64(c.ch)
				for j := 0; j < c.ch; j++ {
					d := float64(x[i*c.ch+j]) - mean
					ss += d * d
				}
				rstd := 1 / math.Sqrt(ss/float64(c.ch)+1e-5)
				for j := 0; j < c.ch; j++ {
					want[i*c.ch+j] = (float64(x[i*c.ch+j])-mean)*rstd*float64(gamma[j]) + float64(beta[j])
				}
			}
			if err := ctx.LayerNorm(c.m, c.ch, 1e-5, x, gamma, beta, x); err != nil {
				t.Fatal(err)
			}
			if e := relL2(x, want, 1, len(want), len(want)); !(e <= tolF32) {
				t.Errorf("%v/%dx%d: rel L2 %.3g > %.3g", l, c.m, c.ch, e, tolF32)
			}
		}
	}
}

// TestRandomShapes: many random sizes (around the register-tile and k-chunk edges) and strides, fp32 and
// bf16-resident weights, linear and conv, on every level.
func TestRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for it := 0; it < 12; it++ {
			c := linCase{m: 1 + r.IntN(70), n: 1 + r.IntN(140), k: 1 + r.IntN(600), padX: r.IntN(4),
				padY: r.IntN(4), bias: r.IntN(2) == 0, res: r.IntN(2) == 0, act: Act(r.IntN(3))}
			fp32 := r.IntN(2) == 0
			ldx, ldy := c.k+c.padX, c.n+c.padY
			x := randSlice(r, c.m*ldx, 1)
			wf := randSlice(r, c.n*c.k, 1/math.Sqrt(float64(c.k)))
			var bias, res []float32
			if c.bias {
				bias = randSlice(r, c.n, 0.5)
			}
			if c.res {
				res = randSlice(r, c.m*ldy, 1)
			}
			want := refLinear(x, ldx, wf, c, bias, res, ldy)
			w, err := ctx.PackLinear(f32bytes(wf), F32, c.n, c.k, fp32)
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, c.m*ldy)
			if err := ctx.Linear(w, c.m, x, ldx, y, ldy, bias, res, ldy, c.act); err != nil {
				t.Fatal(err)
			}
			if e, tol := relL2(y, want, c.m, c.n, ldy), tolFor(w, fp32); !(e <= tol) {
				t.Errorf("%v linear %+v fp32=%v: rel L2 %.3g > %.3g", l, c, fp32, e, tol)
			}
			w.Free()
		}
		for it := 0; it < 6; it++ {
			k := []int{1, 3, 5}[r.IntN(3)]
			c := convCase{b: 1 + r.IntN(2), h: k + r.IntN(9), w: k + r.IntN(9), cin: 1 + r.IntN(40),
				cout: 1 + r.IntN(70), k: k, stride: 1 + r.IntN(2), pad: r.IntN(k/2 + 1), bias: r.IntN(2) == 0,
				act: Act(r.IntN(3))}
			fp32 := r.IntN(2) == 0
			x := randSlice(r, c.b*c.h*c.w*c.cin, 1)
			wf := randSlice(r, c.cout*c.cin*c.k*c.k, 1/math.Sqrt(float64(c.cin*c.k*c.k)))
			var bias []float32
			if c.bias {
				bias = randSlice(r, c.cout, 0.5)
			}
			want, ho, wo := refConv(x, wf, c, bias, nil)
			w, err := ctx.PackConv(f32bytes(wf), F32, c.cout, c.cin, c.k, c.k, fp32)
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, c.b*ho*wo*c.cout)
			if err := ctx.Conv2D(w, c.b, c.h, c.w, x, c.stride, c.pad, y, bias, nil, c.act); err != nil {
				t.Fatal(err)
			}
			if e, tol := relL2(y, want, 1, len(want), len(want)), tolFor(w, fp32); !(e <= tol) {
				t.Errorf("%v conv %+v fp32=%v: rel L2 %.3g > %.3g", l, c, fp32, e, tol)
			}
			w.Free()
		}
	}
}

func TestGEGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	cases := []struct {
		m, f, k int
		bias    bool
	}{{9, 37, 50, true}, {33, 100, 300, false}, {5, 8, 16, true}, {70, 70, 129, true}}
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for ci, c := range cases {
			for _, fp32 := range []bool{true, false} {
				x := randSlice(r, c.m*c.k, 1)
				wf := randSlice(r, 2*c.f*c.k, 1/math.Sqrt(float64(c.k)))
				var bias []float32
				if c.bias {
					bias = randSlice(r, 2*c.f, 0.5)
				}
				want := make([]float64, c.m*c.f)
				for i := 0; i < c.m; i++ {
					for j := 0; j < c.f; j++ {
						var a, g float64
						for kk := 0; kk < c.k; kk++ {
							a += float64(x[i*c.k+kk]) * float64(wf[j*c.k+kk])
							g += float64(x[i*c.k+kk]) * float64(wf[(c.f+j)*c.k+kk])
						}
						if bias != nil {
							a += float64(bias[j])
							g += float64(bias[c.f+j])
						}
						want[i*c.f+j] = a * gelu(g)
					}
				}
				w, err := ctx.PackGEGLU(f32bytes(wf), F32, 2*c.f, c.k, bias, fp32)
				if err != nil {
					t.Fatal(err)
				}
				ldy := c.f + 3
				y := make([]float32, c.m*ldy)
				if err := ctx.Linear(w, c.m, x, c.k, y, ldy, nil, nil, 0, ActNone); err != nil {
					t.Fatal(err)
				}
				if e, tol := relL2(y, want, c.m, c.f, ldy), tolFor(w, fp32); !(e <= tol) {
					t.Errorf("%v/case%d/fp32=%v (kernel %v): rel L2 %.3g > %.3g", l, ci, fp32, w.Level(), e, tol)
				}
				for i := 0; i < c.m; i++ { // the padding columns past f stay untouched
					for j := c.f; j < ldy; j++ {
						if y[i*ldy+j] != 0 {
							t.Fatalf("%v/case%d: wrote y[%d][%d] beyond the output width", l, ci, i, j)
						}
					}
				}
				if err := ctx.Linear(w, c.m, x, c.k, y, ldy, make([]float32, c.f), nil, 0, ActNone); !errors.Is(err, ErrMismatch) {
					t.Errorf("GEGLU weight with a call-time bias: got %v, want ErrMismatch", err)
				}
				w.Free()
			}
		}
	}
}
