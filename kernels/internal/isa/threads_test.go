package isa

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Every op's result is the same bits at 1, 2 and 3 threads on every level this CPU runs (each output
// element is reduced in a fixed order by one thread): the pipeline promises images independent of the
// thread count.
func TestThreadCountIndependent(t *testing.T) {
	for _, l := range levels(t) {
		t.Run(l.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(l)))
			type op struct {
				name string
				run  func(c *Ctx) []float32
			}
			const m, k, n = 77, 96, 200
			x := randSlice(r, m*k, 1)
			wsrc := f32bytes(randSlice(r, n*k, 0.1))
			bias := randSlice(r, n, 0.1)
			const b, h, wd, cin, cout = 2, 9, 11, 24, 40
			cx := randSlice(r, b*h*wd*cin, 1)
			csrc := f32bytes(randSlice(r, cout*cin*9, 0.1))
			const hd, heads, d, tq, tk = 2 * 64, 2, 64, 70, 300
			q, kk, v := randSlice(r, b*tq*hd, 1), randSlice(r, b*tk*hd, 1), randSlice(r, b*tk*hd, 1)
			const hw, ch, groups = 333, 64, 8
			gx := randSlice(r, b*hw*ch, 2)
			gamma, beta := randSlice(r, ch, 1), randSlice(r, ch, 1)
			ops := []op{}
			for _, fp32 := range []bool{false, true} {
				fp32 := fp32
				suffix := "/bf16w"
				if fp32 {
					suffix = "/fp32w"
				}
				ops = append(ops,
					op{"linear" + suffix, func(c *Ctx) []float32 {
						w, err := c.PackLinear(wsrc, F32, n, k, fp32)
						if err != nil {
							t.Fatal(err)
						}
						defer w.Free()
						y := make([]float32, m*n)
						if err := c.Linear(w, m, x, k, y, n, bias, nil, 0, ActNone); err != nil {
							t.Fatal(err)
						}
						return y
					}},
					op{"conv3x3" + suffix, func(c *Ctx) []float32 {
						w, err := c.PackConv(csrc, F32, cout, cin, 3, 3, fp32)
						if err != nil {
							t.Fatal(err)
						}
						defer w.Free()
						y := make([]float32, b*h*wd*cout)
						if err := c.Conv2D(w, b, h, wd, cx, 1, 1, y, nil, nil, ActNone); err != nil {
							t.Fatal(err)
						}
						return y
					}})
			}
			ops = append(ops,
				op{"attention", func(c *Ctx) []float32 {
					o := make([]float32, b*tq*hd)
					if err := c.Attention(AttentionArgs{B: b, Tq: tq, Tk: tk, Heads: heads, D: d, Q: q, K: kk, V: v, O: o,
						LdQ: hd, LdK: hd, LdV: hd, LdO: hd, Scale: 0.125}); err != nil {
						t.Fatal(err)
					}
					return o
				}},
				op{"group_norm", func(c *Ctx) []float32 {
					y := make([]float32, len(gx))
					if err := c.GroupNorm(b, hw, ch, groups, 1e-5, gx, gamma, beta, y, true); err != nil {
						t.Fatal(err)
					}
					return y
				}},
				op{"layer_norm", func(c *Ctx) []float32 {
					y := make([]float32, len(gx))
					if err := c.LayerNorm(b*hw, ch, 1e-5, gx, gamma, beta, y); err != nil {
						t.Fatal(err)
					}
					return y
				}})
			for _, o := range ops {
				var ref []float32
				for _, threads := range []int{1, 2, 3} {
					c, err := NewCtx(threads, l)
					if err != nil {
						t.Fatal(err)
					}
					got := o.run(c)
					c.Close()
					if ref == nil {
						ref = got
						continue
					}
					diff := 0
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
							diff++
						}
					}
					if diff > 0 {
						t.Errorf("%s: %d threads differ from 1 thread in %d of %d values", o.name, threads, diff, len(got))
					}
				}
			}
		})
	}
}
