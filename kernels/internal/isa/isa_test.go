package isa

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Tolerances on the relative L2 error against the float64 reference.
const (
	tolF32  = 1e-5 // fp32 weights and activations
	tolBF16 = 1e-2 // bf16-resident weights (and bf16 activations on the avx512bf16 / AMX paths)
)

// levels lists every level this process may run (supported here and not above the TDXL_MAX_ISA cap),
// the emulated AMX one included.
func levels(t *testing.T) []Level {
	t.Helper()
	var ls []Level
	for _, l := range []Level{LevelRef, LevelAVX2, LevelAVX512, LevelAVX512BF16, LevelAMX, LevelAMXEmu} {
		if Supported(l) && (l <= Best() || l == LevelAMXEmu) {
			ls = append(ls, l)
		}
	}
	return ls
}

func newCtx(t *testing.T, threads int, l Level) *Ctx {
	t.Helper()
	c, err := NewCtx(threads, l)
	if err != nil {
		t.Fatalf("NewCtx(%d, %v): %v", threads, l, err)
	}
	t.Cleanup(c.Close)
	return c
}

// relL2 = ||got - want|| / ||want|| over a strided [rows][cols] view; NaN or Inf never passes.
func relL2(got []float32, want []float64, rows, cols, ldg int) float64 {
	var num, den float64
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			g := float64(got[i*ldg+j])
			if math.IsNaN(g) || math.IsInf(g, 0) {
				return math.Inf(1)
			}
			d := g - want[i*cols+j]
			num += d * d
			den += want[i*cols+j] * want[i*cols+j]
		}
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// toHalf encodes s as dt (F16 or BF16, round to nearest even) and returns the bytes and the decoded values.
func toHalf(s []float32, dt DType) ([]byte, []float32) {
	b := make([]byte, 2*len(s))
	dec := make([]float32, len(s))
	for i, v := range s {
		var h uint16
		if dt == BF16 {
			u := math.Float32bits(v)
			u += 0x7fff + (u>>16)&1
			h = uint16(u >> 16)
			dec[i] = math.Float32frombits(uint32(h) << 16)
		} else {
			h, dec[i] = f16(v)
		}
		b[2*i], b[2*i+1] = byte(h), byte(h>>8)
	}
	return b, dec
}

// f16 encodes normal-range values (the tests' data) to IEEE half, round to nearest even.
func f16(v float32) (uint16, float32) {
	u := math.Float32bits(v)
	sign := uint16(u>>16) & 0x8000
	a := math.Abs(float64(v))
	if a < 6.1e-5 {
		return sign, float32(math.Copysign(0, float64(v)))
	}
	e := int((u>>23)&0xff) - 127
	m := u & 0x7fffff
	hm := m >> 13
	rem := m & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && hm&1 == 1) {
		hm++
	}
	he := uint16(e + 15)
	if hm == 0x400 {
		hm = 0
		he++
	}
	h := sign | he<<10 | uint16(hm)
	dec := math.Ldexp(1+float64(hm)/1024, int(he)-15)
	if sign != 0 {
		dec = -dec
	}
	return h, float32(dec)
}

func gelu(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }
func silu(v float64) float64 { return v / (1 + math.Exp(-v)) }

func applyAct(v float64, act Act) float64 {
	switch act {
	case ActGELU:
		return gelu(v)
	case ActSiLU:
		return silu(v)
	}
	return v
}

// tolFor picks the tolerance for a weight: fp32 only when fp32 panels run on an fp32-FMA path.
func tolFor(w *Weight, fp32 bool) float64 {
	if fp32 && w.Level() <= LevelAVX512 {
		return tolF32
	}
	return tolBF16
}

func TestLevels(t *testing.T) {
	best := Best()
	if !Supported(best) || best == LevelAMXEmu {
		t.Fatalf("Best() = %v is not a supported hardware level", best)
	}
	if !Supported(LevelRef) || !Supported(LevelAMXEmu) {
		t.Fatal("ref and amx-emu must always be supported")
	}
	for l := LevelRef; l <= LevelAMX; l++ {
		if Supported(l+1) && l+1 <= LevelAMX && !Supported(l) {
			t.Errorf("level %v supported but lower %v not", l+1, l)
		}
	}
	want := map[Level]string{LevelRef: "ref", LevelAVX2: "avx2", LevelAVX512: "avx512",
		LevelAVX512BF16: "avx512bf16", LevelAMX: "amx", LevelAMXEmu: "amx-emu"}
	for l, s := range want {
		if l.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(l), l.String(), s)
		}
	}
	if _, err := NewCtx(1, Level(42)); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewCtx(level 42) = %v, want ErrInvalid", err)
	}
	if !Supported(LevelAMX) {
		if _, err := NewCtx(1, LevelAMX); !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewCtx(amx) without AMX = %v, want ErrUnsupported", err)
		}
	}
	t.Logf("features %#x, best %v", Features(), best)
}

// TestMaxISACap re-runs this test binary with TDXL_MAX_ISA set and checks the level it picks.
func TestMaxISACap(t *testing.T) {
	if os.Getenv("TDXL_ISA_CAP_CHILD") == "1" {
		fmt.Printf("best=%s\n", Best())
		return
	}
	cases := map[string]string{"ref": "ref", "avx2": "avx2", "bogus": "ref"}
	if Supported(LevelAVX512) {
		cases["avx512"] = "avx512"
	}
	for cap, want := range cases {
		if want == "avx2" && !Supported(LevelAVX2) {
			want = "ref"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestMaxISACap$", "-test.count=1")
		cmd.Env = append(os.Environ(), "TDXL_ISA_CAP_CHILD=1", "TDXL_MAX_ISA="+cap)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child with TDXL_MAX_ISA=%s: %v\n%s", cap, err, out)
		}
		if !strings.Contains(string(out), "best="+want+"\n") {
			t.Errorf("TDXL_MAX_ISA=%s: got %q, want best=%s", cap, out, want)
		}
	}
}

type linCase struct {
	m, n, k    int
	padX, padY int
	bias, res  bool
	act        Act
}

var linCases = []linCase{
	{1, 1, 1, 0, 0, false, false, ActNone},
	{7, 13, 29, 3, 1, true, false, ActNone},
	{37, 67, 131, 0, 5, true, true, ActGELU},
	{50, 70, 300, 1, 0, false, true, ActSiLU}, // k > avx512 kc: k-chunk accumulation
	{35, 33, 700, 2, 2, true, false, ActNone}, // k > AMX kc (512)
	{97, 130, 64, 0, 0, true, true, ActNone},  // several M and N tiles
}

func refLinear(x []float32, ldx int, w []float32, c linCase, bias, res []float32, ldr int) []float64 {
	out := make([]float64, c.m*c.n)
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			var s float64
			for kk := 0; kk < c.k; kk++ {
				s += float64(x[i*ldx+kk]) * float64(w[j*c.k+kk])
			}
			if bias != nil {
				s += float64(bias[j])
			}
			if res != nil {
				s += float64(res[i*ldr+j])
			}
			out[i*c.n+j] = applyAct(s, c.act)
		}
	}
	return out
}

func TestLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, l := range levels(t) {
		ctx := newCtx(t, 2, l)
		for ci, c := range linCases {
			for _, dt := range []DType{F32, F16, BF16} {
				for _, fp32 := range []bool{true, false} {
					name := fmt.Sprintf("%v/case%d/dt%d/fp32=%v", l, ci, dt, fp32)
					ldx, ldy := c.k+c.padX, c.n+c.padY
					x := randSlice(r, c.m*ldx, 1)
					wf := randSlice(r, c.n*c.k, 1/math.Sqrt(float64(c.k)))
					src := f32bytes(wf)
					if dt != F32 {
						src, wf = toHalf(wf, dt)
					}
					var bias, res []float32
					if c.bias {
						bias = randSlice(r, c.n, 0.5)
					}
					if c.res {
						res = randSlice(r, c.m*ldy, 1)
					}
					want := refLinear(x, ldx, wf, c, bias, res, ldy)
					w, err := ctx.PackLinear(src, dt, c.n, c.k, fp32)
					if err != nil {
						t.Fatalf("%s: pack: %v", name, err)
					}
					y := make([]float32, c.m*ldy)
					if c.res { // in place: residual aliases y
						copy(y, res)
						res = y
					}
					if err := ctx.Linear(w, c.m, x, ldx, y, ldy, bias, res, ldy, c.act); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if e, tol := relL2(y, want, c.m, c.n, ldy), tolFor(w, fp32); !(e <= tol) {
						t.Errorf("%s (kernel %v): rel L2 %.3g > %.3g", name, w.Level(), e, tol)
					}
					if l == LevelAMXEmu && !fp32 && w.Level() != LevelAMXEmu {
						t.Errorf("%s: bf16 weight ran on %v, want the emulated AMX kernel", name, w.Level())
					}
					w.Free()
					w.Free()
				}
			}
		}
	}
}

// TestLinearThreadIndependence: GEMM results are bitwise the same for 1 and 3 threads (the k order of
// every output element does not depend on the tiling).
func TestLinearThreadIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const m, n, k = 61, 150, 333
	x := randSlice(r, m*k, 1)
	wb := f32bytes(randSlice(r, n*k, 0.1))
	for _, l := range levels(t) {
		var outs [][]float32
		for _, th := range []int{1, 3} {
			ctx := newCtx(t, th, l)
			w, err := ctx.PackLinear(wb, F32, n, k, false)
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, m*n)
			if err := ctx.Linear(w, m, x, k, y, n, nil, nil, 0, ActNone); err != nil {
				t.Fatal(err)
			}
			w.Free()
			outs = append(outs, y)
		}
		for i := range outs[0] {
			if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
				t.Fatalf("%v: element %d differs between 1 and 3 threads: %v vs %v", l, i, outs[0][i], outs[1][i])
			}
		}
	}
}

func TestLinearErrors(t *testing.T) {
	ctx := newCtx(t, 1, LevelRef)
	w, err := ctx.PackLinear(f32bytes(make([]float32, 12)), F32, 3, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	x, y := make([]float32, 8), make([]float32, 6)
	if err := ctx.Linear(w, 2, x, 4, y, 3, nil, nil, 0, ActNone); err != nil {
		t.Fatalf("valid call: %v", err)
	}
	bad := []struct {
		name string
		call func() error
	}{
		{"x too short", func() error { return ctx.Linear(w, 3, x, 4, make([]float32, 9), 3, nil, nil, 0, ActNone) }},
		{"ldx < k", func() error { return ctx.Linear(w, 2, x, 3, y, 3, nil, nil, 0, ActNone) }},
		{"bias too short", func() error { return ctx.Linear(w, 2, x, 4, y, 3, []float32{1}, nil, 0, ActNone) }},
		{"bad act", func() error { return ctx.Linear(w, 2, x, 4, y, 3, nil, nil, 0, Act(9)) }},
		{"pack short src", func() error { _, err := ctx.PackLinear(make([]byte, 10), F32, 3, 4, true); return err }},
		{"pack bad dtype", func() error { _, err := ctx.PackLinear(make([]byte, 64), DType(7), 3, 4, true); return err }},
	}
	for _, b := range bad {
		if err := b.call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", b.name, err)
		}
	}
	cw, err := ctx.PackConv(f32bytes(make([]float32, 2*3*9)), F32, 2, 3, 3, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cw.Free()
	if err := ctx.Linear(&Weight{p: cw.p, N: 2, K: 27}, 1, make([]float32, 27), 27, make([]float32, 2), 2,
		nil, nil, 0, ActNone); !errors.Is(err, ErrMismatch) {
		t.Errorf("3x3 conv weight used as linear: got %v, want ErrMismatch", err)
	}
}
