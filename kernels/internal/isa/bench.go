package isa

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"syscall"
	"time"
)

// ReportOptions configures Report. The zero value benchmarks all CPUs at the best level for ~1-2 minutes.
type ReportOptions struct {
	Threads  int           // 0 = all CPUs
	MinTime  time.Duration // per shape and path; 0 = 300ms
	PeakTime time.Duration // FMA peak measurement; 0 = 1s
	Short    bool          // a few shapes only (smoke runs)
}

// ReportRow is one measured shape on one path. Two views of the same timing: by wall clock (what a user
// waits, at the mercy of the host's load) and per CPU-second actually received (process CPU time; robust
// when the host is oversubscribed, blind to time lost waiting for a descheduled thread).
type ReportRow struct {
	Op, Shape, Path string
	M               int     // GEMM rows (tokens / pixels); 0 for attention
	Seconds         float64 // wall per call
	CPUSeconds      float64 // process CPU per call
	GFLOPs          float64 // by wall clock, all threads
	PctOfPeak       float64 // of the fp32 FMA peak measured just before this row, wall clock
	PctCPU          float64 // per CPU-second, of the fp32 FMA peak per CPU-second
	PctOwnCPU       float64 // per CPU-second, of the path's own instruction peak (vdpbf16ps on avx512bf16)
}

// ReportResult is what Report measured.
type ReportResult struct {
	Threads    int
	Best       string
	PeakGFLOPs float64 // fp32 FMA, zmm (avx512 and up) or ymm, all threads, wall clock, at the start
	PeakPerCPU float64 // fp32 FMA per CPU-second of one thread
	DotPerCPU  float64 // the best path's own instruction per CPU-second (= PeakPerCPU below avx512bf16)
	AVX2PerCPU float64 // fp32 FMA with ymm per CPU-second, when AVX2 is available
	Rows       []ReportRow
	// Medians over the GEMM shapes with M >= 1024: the fp32-FMA path (avx512, else the best) against the
	// fp32 FMA peak, by wall clock and per CPU-second; the best path against its own instruction's peak.
	GEMMPctFMAWall, GEMMPctFMACPU, GEMMPctBestCPU float64

	localPeak float64 // seconds the fp32 FMA peak is re-measured before each row
}

type gemmShape struct {
	what    string
	m, k, n int
}

// SDXL's real GEMM shapes (tokens x in x out); see shared/anchors/inference-perf.md §2.
var benchGEMM = []gemmShape{
	{"64² level 1x1/linear (1024² image)", 4096, 320, 320},
	{"64² level (1024²)", 4096, 320, 1280},
	{"64² level (1024²)", 4096, 320, 2560},
	{"32² attn proj, C=640", 1024, 640, 640},
	{"32² GEGLU in, C=640", 1024, 640, 5120},
	{"32² FF out, C=640", 1024, 2560, 640},
	{"32² attn proj, C=1280 (1024²)", 1024, 1280, 1280},
	{"32² GEGLU in, C=1280 (1024²)", 1024, 1280, 10240},
	{"16² attn proj, C=1280 (512²)", 256, 1280, 1280},
	{"16² GEGLU in, C=1280 (512²)", 256, 1280, 10240},
	{"16² FF out, C=1280 (512²)", 256, 5120, 1280},
	{"text K/V, 77 tokens", 77, 2048, 1280},
}

type convShape struct {
	what                   string
	h, w, cin, cout, strde int
}

var benchConv = []convShape{
	{"UNet 64² 320->320", 64, 64, 320, 320, 1},
	{"UNet 32² 640->640", 32, 32, 640, 640, 1},
	{"UNet 16² 1280->1280", 16, 16, 1280, 1280, 1},
	{"UNet down 64²->32² 320", 64, 64, 320, 320, 2},
	{"VAE 64² 512->512", 64, 64, 512, 512, 1},
	{"VAE 256² 256->256 (512² image)", 256, 256, 256, 256, 1},
	{"VAE 512² 128->128 (512² image)", 512, 512, 128, 128, 1},
}

type attnShape struct {
	what             string
	tq, tk, heads, d int
}

var benchAttn = []attnShape{
	{"UNet 32² self (512²), 10 heads", 1024, 1024, 10, 64},
	{"UNet 64² self (1024²), 5 of 10 heads", 4096, 4096, 5, 64},
	{"UNet cross 1024x77, 10 heads", 1024, 77, 10, 64},
	{"VAE mid 64² (512²), 1 head d=512", 4096, 4096, 1, 512},
}

// Report measures the FMA peak, then GEMM, conv and attention over SDXL's shapes, printing one line per
// shape with GFLOP/s, % of the same-run peak and the path that ran. Figures on a shared machine are noisy.
func Report(out io.Writer, opts ReportOptions) (*ReportResult, error) {
	if opts.MinTime == 0 {
		opts.MinTime = 300 * time.Millisecond
	}
	if opts.PeakTime == 0 {
		opts.PeakTime = time.Second
	}
	best := Best()
	ctx, err := NewCtx(opts.Threads, best)
	if err != nil {
		return nil, err
	}
	defer ctx.Close()
	res := &ReportResult{Threads: ctx.Threads(), Best: best.String()}
	if res.PeakGFLOPs, res.PeakPerCPU, err = ctx.Peak(false, opts.PeakTime.Seconds()); err != nil {
		return nil, err
	}
	if _, res.DotPerCPU, err = ctx.Peak(true, opts.PeakTime.Seconds()/2); err != nil {
		res.DotPerCPU = res.PeakPerCPU // AMX: no tile peak loop
	}
	if best >= LevelAVX2 {
		c2, err := NewCtx(opts.Threads, LevelAVX2)
		if err != nil {
			return nil, err
		}
		_, res.AVX2PerCPU, err = c2.Peak(false, opts.PeakTime.Seconds()/2)
		c2.Close()
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "isa report: %d threads, best path %s; fp32 FMA peak %.1f GFLOP/s wall (all threads), "+
		"%.1f per CPU-second (ymm %.1f); %s instruction %.1f per CPU-second\n",
		res.Threads, res.Best, res.PeakGFLOPs, res.PeakPerCPU, res.AVX2PerCPU, res.Best, res.DotPerCPU)
	fmt.Fprintln(out, "isa report: % of peak by wall clock is against a peak re-measured before each row; "+
		"per CPU-second figures discount time the host gave to other processes")
	paths := []Level{best}
	fmaPath := best
	if best > LevelAVX512 && Supported(LevelAVX512) {
		paths = append(paths, LevelAVX512) // the fp32-FMA path with bf16 weights, for comparison
		fmaPath = LevelAVX512
	}
	gemms, convs, attns := benchGEMM, benchConv, benchAttn
	if opts.Short { // small stand-ins, for the smoke test
		gemms = []gemmShape{{"short", 96, 64, 128}}
		convs = []convShape{{"short", 8, 8, 16, 32, 1}}
		attns = []attnShape{{"short", 64, 64, 2, 32}}
	}
	res.localPeak = opts.PeakTime.Seconds() / 10
	r := rand.New(rand.NewPCG(1, 1))
	var fmaWall, fmaCPU, bestCPU []float64
	emit := func(row ReportRow) {
		res.Rows = append(res.Rows, row)
		fmt.Fprintln(out, row.line())
	}
	for _, lv := range paths {
		c := ctx
		if lv != best {
			if c, err = NewCtx(opts.Threads, lv); err != nil {
				return nil, err
			}
			defer c.Close()
		}
		for _, s := range gemms {
			row, err := benchLinear(c, r, s, opts.MinTime, res)
			if err != nil {
				return nil, err
			}
			emit(row)
			if lv == best && s.m >= 1024 {
				bestCPU = append(bestCPU, row.PctOwnCPU)
			}
			if lv == fmaPath && s.m >= 1024 {
				fmaWall = append(fmaWall, row.PctOfPeak)
				fmaCPU = append(fmaCPU, row.PctCPU)
			}
		}
		for _, s := range gemms {
			if s.n < 5120 {
				continue // the GEGLU projections: fused hidden * gelu(gate) epilogue
			}
			row, err := benchGEGLU(c, r, s, opts.MinTime, res)
			if err != nil {
				return nil, err
			}
			emit(row)
		}
		for _, s := range convs {
			row, err := benchConv2D(c, r, s, opts.MinTime, res)
			if err != nil {
				return nil, err
			}
			emit(row)
		}
	}
	for _, s := range attns {
		row, err := benchAttention(ctx, r, s, opts.MinTime, res)
		if err != nil {
			return nil, err
		}
		emit(row)
	}
	res.GEMMPctFMAWall, res.GEMMPctFMACPU, res.GEMMPctBestCPU = median(fmaWall), median(fmaCPU), median(bestCPU)
	fmt.Fprintf(out, "isa report: GEMM at M >= 1024, median: %s path %.0f%% of the fp32 FMA peak by wall clock, "+
		"%.0f%% per CPU-second; %s path %.0f%% of its own instruction's peak per CPU-second\n",
		fmaPath, res.GEMMPctFMAWall, res.GEMMPctFMACPU, best, res.GEMMPctBestCPU)
	return res, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func (r ReportRow) line() string {
	return fmt.Sprintf("%-9s %-58s %-24s %9.2f ms %7.1f GFLOP/s %4.0f%% of FMA peak | per CPU-s %4.0f%% of FMA, %4.0f%% of own",
		r.Op, r.Shape, r.Path, r.Seconds*1e3, r.GFLOPs, r.PctOfPeak, r.PctCPU, r.PctOwnCPU)
}

func cpuNow() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// timeIt runs f once to warm up (scratch growth, page faults), then until minTime has passed; it returns
// wall and process-CPU seconds per call.
func timeIt(minTime time.Duration, f func() error) (wall, cpu float64, err error) {
	if err := f(); err != nil {
		return 0, 0, err
	}
	n := 0
	start, c0 := time.Now(), cpuNow()
	for time.Since(start) < minTime || n < 1 {
		if err := f(); err != nil {
			return 0, 0, err
		}
		n++
	}
	return time.Since(start).Seconds() / float64(n), (cpuNow() - c0) / float64(n), nil
}

// measure times f against an fp32 FMA peak re-measured just before it (the host's load changes within
// seconds) and fills the row's rates; own is the per-CPU-second peak of the path's instruction.
func measure(c *Ctx, row *ReportRow, flops, own float64, minTime time.Duration, res *ReportResult,
	f func() error) error {
	fma, _, err := c.Peak(false, res.localPeak)
	if err != nil {
		return err
	}
	if row.Seconds, row.CPUSeconds, err = timeIt(minTime, f); err != nil {
		return err
	}
	row.GFLOPs = flops / row.Seconds / 1e9
	row.PctOfPeak = 100 * row.GFLOPs / fma
	if row.CPUSeconds > 0 {
		perCPU := flops / row.CPUSeconds / 1e9
		row.PctCPU = 100 * perCPU / res.PeakPerCPU
		row.PctOwnCPU = 100 * perCPU / own
	}
	return nil
}

// ownPeak is the per-CPU-second peak of the instruction w's kernel is built on.
func ownPeak(w *Weight, res *ReportResult) float64 {
	if w.Level() == LevelAVX512BF16 {
		return res.DotPerCPU
	}
	return res.PeakPerCPU
}

func benchLinear(c *Ctx, r *rand.Rand, s gemmShape, minTime time.Duration, res *ReportResult) (ReportRow, error) {
	w, err := c.PackLinear(f32bytes(randSlice(r, s.n*s.k, 0.05)), F32, s.n, s.k, false)
	if err != nil {
		return ReportRow{}, err
	}
	defer w.Free()
	x, y := randSlice(r, s.m*s.k, 1), make([]float32, s.m*s.n)
	row := ReportRow{Op: "linear", Shape: fmt.Sprintf("M%d K%d N%d %s", s.m, s.k, s.n, s.what), M: s.m,
		Path: pathName(w)}
	err = measure(c, &row, 2*float64(s.m)*float64(s.k)*float64(s.n), ownPeak(w, res), minTime, res,
		func() error { return c.Linear(w, s.m, x, s.k, y, s.n, nil, nil, 0, ActNone) })
	return row, err
}

func benchGEGLU(c *Ctx, r *rand.Rand, s gemmShape, minTime time.Duration, res *ReportResult) (ReportRow, error) {
	w, err := c.PackGEGLU(f32bytes(randSlice(r, s.n*s.k, 0.05)), F32, s.n, s.k, randSlice(r, s.n, 0.1), false)
	if err != nil {
		return ReportRow{}, err
	}
	defer w.Free()
	x, y := randSlice(r, s.m*s.k, 1), make([]float32, s.m*s.n/2)
	row := ReportRow{Op: "geglu", Shape: fmt.Sprintf("M%d K%d N%d->%d %s", s.m, s.k, s.n, s.n/2, s.what), M: s.m,
		Path: pathName(w)}
	err = measure(c, &row, 2*float64(s.m)*float64(s.k)*float64(s.n), ownPeak(w, res), minTime, res,
		func() error { return c.Linear(w, s.m, x, s.k, y, s.n/2, nil, nil, 0, ActNone) })
	return row, err
}

func benchConv2D(c *Ctx, r *rand.Rand, s convShape, minTime time.Duration, res *ReportResult) (ReportRow, error) {
	w, err := c.PackConv(f32bytes(randSlice(r, s.cout*s.cin*9, 0.02)), F32, s.cout, s.cin, 3, 3, false)
	if err != nil {
		return ReportRow{}, err
	}
	defer w.Free()
	ho, wo := ConvOut(s.h, 3, s.strde, 1), ConvOut(s.w, 3, s.strde, 1)
	x, y := randSlice(r, s.h*s.w*s.cin, 1), make([]float32, ho*wo*s.cout)
	row := ReportRow{Op: "conv3x3", Shape: s.what, M: ho * wo, Path: pathName(w)}
	err = measure(c, &row, 2*float64(ho*wo)*float64(9*s.cin)*float64(s.cout), ownPeak(w, res), minTime, res,
		func() error { return c.Conv2D(w, 1, s.h, s.w, x, s.strde, 1, y, nil, nil, ActNone) })
	return row, err
}

func benchAttention(c *Ctx, r *rand.Rand, s attnShape, minTime time.Duration, res *ReportResult) (ReportRow, error) {
	hd := s.heads * s.d
	a := AttentionArgs{B: 1, Tq: s.tq, Tk: s.tk, Heads: s.heads, D: s.d, Q: randSlice(r, s.tq*hd, 1),
		K: randSlice(r, s.tk*hd, 1), V: randSlice(r, s.tk*hd, 1), O: make([]float32, s.tq*hd),
		LdQ: hd, LdK: hd, LdV: hd, LdO: hd, Scale: float32(1 / math.Sqrt(float64(s.d)))}
	path := c.Level()
	if path > LevelAVX512 && path != LevelAMXEmu {
		path = LevelAVX512 // attention runs the avx512 kernels on the bf16 levels
	}
	row := ReportRow{Op: "attention", Shape: fmt.Sprintf("%dx%dx%d %s", s.tq, s.tk, s.d, s.what),
		Path: path.String() + " fp32"}
	err := measure(c, &row, 4*float64(s.tq)*float64(s.tk)*float64(hd), res.PeakPerCPU, minTime, res,
		func() error { return c.Attention(a) })
	return row, err
}

func pathName(w *Weight) string {
	switch w.Level() {
	case LevelAVX512BF16:
		return "avx512bf16 (vdpbf16ps)"
	case LevelAMX, LevelAMXEmu:
		return w.Level().String() + " (tiles)"
	default:
		return w.Level().String() + " fp32 FMA, bf16 W"
	}
}
