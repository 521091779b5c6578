// Package bench is the end-to-end benchmark of the kernels core (`tdxl-backend bench`, `make bench`):
// it synthesizes (once, cached outside the repository) a random-weight checkpoint of the chosen
// preset, loads it and times text encoders, every UNet step, the VAE decoder and PNG encoding, then
// measures the fp32 FMA peak in the same run, prints achieved GFLOP/s per stage against it (for the
// SDXL architecture, whose FLOPs are known), runs the isa package's GEMM/conv/attention report over
// SDXL's shapes, prints peak RSS, the thread count, the kernel path and ends with one JSON line:
// {"isa","threads","peak_gflops","gemm_pct_of_peak","te_s","unet_step_s","vae_s","image_s","floor_s",
// "peak_rss_bytes","width","height","steps","batch","dot_peak_gflops","dot_floor_s"} (floor_s = FLOPs
// of one image / fp32 FMA peak; dot_floor_s = the same against the bf16 path's own instruction peak,
// 0 when that path did not run). --compare-batch N also times batch N, alternating with --batch in
// the same run, and prints both per-image times side by side.
// It is a report, not a test.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tdxl/tdxl/kernels"
	"github.com/tdxl/tdxl/kernels/internal/isa"
	"github.com/tdxl/tdxl/kernels/synth"
)

// Exit codes of Main.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

type config struct {
	preset, modelDir, prompt string
	batch, height, width     int
	compareBatch             int
	steps, repeat, threads   int
	seed                     int64
	bf16                     bool
	isa, gemm                string
	peakSeconds              float64
}

func parse(args []string, stderr io.Writer) (*config, int) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.preset, "preset", "sdxl-turbo", "synthesized model preset when --model-dir is not given: "+strings.Join(synth.Presets(), " | "))
	fs.StringVar(&c.modelDir, "model-dir", "", "diffusers model folder (default: synthesize the preset into the cache)")
	fs.StringVar(&c.prompt, "prompt", "A panda listening to music with headphones. highly detailed, 8k.", "prompt")
	fs.IntVar(&c.batch, "batch", 1, "images per run")
	fs.IntVar(&c.compareBatch, "compare-batch", 0, "also time this batch size in the same run, alternating with --batch, and print per-image times side by side (0 = off)")
	fs.IntVar(&c.height, "height", 512, "image height")
	fs.IntVar(&c.width, "width", 512, "image width")
	fs.IntVar(&c.steps, "step", 4, "denoising steps")
	fs.IntVar(&c.repeat, "repeat", 1, "timed runs")
	fs.IntVar(&c.threads, "threads", 0, "threads (0 = all cores)")
	fs.Int64Var(&c.seed, "seed", 0, "noise seed")
	fs.BoolVar(&c.bf16, "bf16", false, "bf16-resident weights (converted once at load) on the fast path; default fp32-resident")
	fs.StringVar(&c.isa, "isa", "", "cap the kernel path: amx | avx512bf16 | avx512 | avx2 | ref (default: best of CPUID, capped by TDXL_MAX_ISA)")
	fs.StringVar(&c.gemm, "gemm", "full", "GEMM/conv/attention microbenchmark over SDXL shapes: full | short | off")
	fs.Float64Var(&c.peakSeconds, "peak-seconds", 1, "seconds of the FMA peak measurement")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tdxl-backend bench [--model-dir DIR | --preset sdxl-turbo|tiny] [--batch N] [--height H] [--width W] [--step N] [--repeat N] [--threads N] [--prompt P] [--bf16]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ExitOK
		}
		return nil, ExitUsage
	}
	if fs.NArg() != 0 || c.repeat < 1 || c.batch < 1 || c.compareBatch < 0 || c.steps < 1 || c.threads < 0 || c.peakSeconds <= 0 ||
		(c.gemm != "full" && c.gemm != "short" && c.gemm != "off") {
		fmt.Fprintln(stderr, "bench: error: bad arguments (repeat, batch, step must be >= 1; compare-batch >= 0; threads >= 0; peak-seconds > 0; gemm full|short|off; no positional arguments)")
		return nil, ExitUsage
	}
	return c, -1
}

// Main runs the benchmark; see the package comment.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, code := parse(args, stderr)
	if c == nil {
		return code
	}
	if err := run(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "bench: error: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// cacheDir is $XDG_CACHE_HOME/tdxl or ~/.cache/tdxl.
func cacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "tdxl"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locating the cache: %w", err)
	}
	return filepath.Join(home, ".cache", "tdxl"), nil
}

// ensureModel returns the model folder, synthesizing the preset into the cache on first use.
func ensureModel(ctx context.Context, c *config, stdout, stderr io.Writer) (string, error) {
	if c.modelDir != "" {
		return c.modelDir, nil
	}
	base, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, "synth-"+c.preset+"-seed0")
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err == nil {
		fmt.Fprintf(stdout, "model: %s (cached synthesized %s)\n", dir, c.preset)
		return dir, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("creating the cache: %w", err)
	}
	fmt.Fprintf(stderr, "bench: synthesizing preset %s into %s (once)\n", c.preset, dir)
	t0 := time.Now()
	if err := synth.Write(ctx, dir, synth.Options{Preset: c.preset, Seed: 0}); err != nil {
		return "", fmt.Errorf("synthesizing %s: %w", c.preset, err)
	}
	fmt.Fprintf(stdout, "model: %s (synthesized %s in %.1f s)\n", dir, c.preset, time.Since(t0).Seconds())
	return dir, nil
}

func secs(d time.Duration) float64 { return d.Seconds() }

func run(ctx context.Context, c *config, stdout, stderr io.Writer) error {
	dir, err := ensureModel(ctx, c, stdout, stderr)
	if err != nil {
		return err
	}
	prec := "fp32"
	if c.bf16 {
		prec = "bf16"
	}
	t0 := time.Now()
	reserve := []kernels.Size{{Width: c.width, Height: c.height, Batch: c.batch}}
	if c.compareBatch > 0 {
		reserve = append(reserve, kernels.Size{Width: c.width, Height: c.height, Batch: c.compareBatch})
	}
	p, err := kernels.Open(dir, kernels.Options{Threads: c.threads, ISA: c.isa, Precision: prec, Reserve: reserve})
	if err != nil {
		return err
	}
	defer p.Close()
	load := time.Since(t0)
	info := p.Info()
	fmt.Fprintf(stdout, "load: %.2f s  (model %s, kernel path %s, %d threads; CPU features: best isa level %s)\n",
		secs(load), info.Model, info.ISA, info.Threads, isa.Best())
	reserved := p.ActivationStats()
	fmt.Fprintf(stdout, "activation arena sized at load for %dx%d, batch %d", c.width, c.height, c.batch)
	if c.compareBatch > 0 {
		fmt.Fprintf(stdout, " and %d", c.compareBatch)
	}
	fmt.Fprintf(stdout, ": footprint %.2f GiB\n", float64(reserved.PeakBytes)/(1<<30))
	peak, err := fmaPeak(info.Threads, c.peakSeconds)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fp32 FMA peak (same run, %d threads, %s): %.1f GFLOP/s\n", info.Threads, fmaLevel(), peak)
	// The bf16 paths are built on an instruction that can outrun fp32 FMA (vdpbf16ps does two
	// multiply-adds per lane): the floor is also given against that instruction's own peak, the
	// stricter yardstick.
	dotPeak, dotName := 0.0, ""
	if strings.HasPrefix(info.ISA, "avx512bf16/") {
		if dotPeak, err = instrPeak(info.Threads, isa.LevelAVX512BF16, c.peakSeconds); err != nil {
			return err
		}
		dotName = "vdpbf16ps"
		fmt.Fprintf(stdout, "bf16 dot peak (same run, %d threads, %s): %.1f GFLOP/s\n", info.Threads, dotName, dotPeak)
	}
	work := sdxlWork(dir, c.width, c.height)
	fmt.Fprintf(stdout, "run: %dx%d, %d steps, batch %d, %d repeat(s)\n", c.width, c.height, c.steps, c.batch, c.repeat)
	var last *kernels.Result
	var pngTime time.Duration
	// per-image seconds of every run of --batch and of --compare-batch
	var perImage, perImageCmp []float64
	one := func(batch int, seed int64, label string) (*kernels.Result, error) {
		res, err := p.Generate(ctx, kernels.Request{Prompts: []string{c.prompt}, Width: c.width, Height: c.height,
			Steps: c.steps, Batch: batch, Seed: seed})
		if err != nil {
			return nil, err
		}
		tp := time.Now()
		for _, im := range res.Images {
			if err := png.Encode(io.Discard, im); err != nil {
				return nil, fmt.Errorf("png: %w", err)
			}
		}
		pngTime = time.Since(tp)
		tm := res.Timings
		fmt.Fprintf(stdout, "%s: text encoders %.2f s", label, secs(tm.TextEncoders))
		for i, s := range tm.UNetSteps {
			fmt.Fprintf(stdout, ", unet step %d %.2f s", i+1, secs(s))
		}
		fmt.Fprintf(stdout, ", vae %.2f s, png %.3f s, total %.2f s (%.3f images/s)\n", secs(tm.VAE), secs(pngTime),
			secs(tm.Total), float64(batch)/secs(tm.Total))
		return res, nil
	}
	for r := 0; r < c.repeat; r++ {
		res, err := one(c.batch, c.seed+int64(r), fmt.Sprintf("run %d", r+1))
		if err != nil {
			return err
		}
		perImage = append(perImage, secs(res.Timings.Total)/float64(c.batch))
		last = res
		if c.compareBatch > 0 {
			rc, err := one(c.compareBatch, c.seed+int64(r), fmt.Sprintf("run %d, batch %d", r+1, c.compareBatch))
			if err != nil {
				return err
			}
			perImageCmp = append(perImageCmp, secs(rc.Timings.Total)/float64(c.compareBatch))
		}
	}
	if c.compareBatch > 0 {
		a, b := slices.Min(perImage), slices.Min(perImageCmp)
		fmt.Fprintf(stdout, "per image (best of %d, same run): batch %d %.2f s, batch %d %.2f s; batch %d / batch %d = %.3f\n",
			c.repeat, c.batch, a, c.compareBatch, b, c.compareBatch, c.batch, b/a)
	}
	act := p.ActivationStats()
	fmt.Fprintf(stdout, "activation memory during the runs: %d blocks requested, %d needed fresh memory (the rest reused the arena's), footprint %.2f GiB\n",
		act.Requests-reserved.Requests, act.NewBlocks-reserved.NewBlocks, float64(act.PeakBytes)/(1<<30))
	tm := last.Timings
	var unet time.Duration
	for _, s := range tm.UNetSteps {
		unet += s
	}
	stepS := secs(unet) / float64(len(tm.UNetSteps))
	nb := float64(c.batch)
	imageS := secs(tm.Total) / nb
	floor, dotFloor := 0.0, 0.0
	if work.unetStep > 0 {
		rate := func(gflop, s float64) string {
			g := gflop * nb / s
			return fmt.Sprintf("%.1f GFLOP/s = %.0f%% of peak", g, 100*g/peak)
		}
		fmt.Fprintf(stdout, "achieved (last run): text encoders %s; unet step %s; vae %s; whole image %s\n",
			rate(work.te, secs(tm.TextEncoders)), rate(work.unetStep, stepS), rate(work.vae, secs(tm.VAE)),
			rate(work.image(c.steps), secs(tm.Total)))
		floor = work.image(c.steps) / peak
		fmt.Fprintf(stdout, "work per image %.0f GFLOP; floor at the measured peak %.1f s; image %.1f s = %.2fx the floor\n",
			work.image(c.steps), floor, imageS, imageS/floor)
		if dotPeak > 0 {
			dotFloor = work.image(c.steps) / dotPeak
			fmt.Fprintf(stdout, "floor at the %s peak %.1f s; image %.1f s = %.2fx that floor\n", dotName, dotFloor, imageS, imageS/dotFloor)
		}
	} else {
		fmt.Fprintln(stdout, "achieved GFLOP/s: not counted for this architecture (only the SDXL one)")
	}
	gemmPct := 0.0
	if c.gemm != "off" {
		r, err := isa.Report(stdout, isa.ReportOptions{Threads: info.Threads, Short: c.gemm == "short",
			PeakTime: time.Duration(c.peakSeconds * float64(time.Second))})
		if err != nil {
			return fmt.Errorf("gemm report: %w", err)
		}
		gemmPct = r.GEMMPctFMAWall
	}
	rss := peakRSS()
	fmt.Fprintf(stdout, "peak RSS: %.2f GiB (VmHWM); threads %d; kernel path %s\n", float64(rss)/(1<<30), info.Threads, info.ISA)
	head := map[string]any{
		"isa": info.ISA, "threads": info.Threads, "peak_gflops": round(peak, 1), "gemm_pct_of_peak": round(gemmPct, 1),
		"te_s": round(secs(tm.TextEncoders), 3), "unet_step_s": round(stepS, 3), "vae_s": round(secs(tm.VAE), 3),
		"image_s": round(imageS, 3), "floor_s": round(floor, 3), "peak_rss_bytes": rss,
		"width": c.width, "height": c.height, "steps": c.steps, "batch": c.batch,
		"dot_peak_gflops": round(dotPeak, 1), "dot_floor_s": round(dotFloor, 3),
	}
	b, _ := json.Marshal(head)
	fmt.Fprintln(stdout, string(b))
	return nil
}

func round(v float64, digits int) float64 {
	s := math.Pow(10, float64(digits))
	return math.Round(v*s) / s
}

// fmaLevel is the level whose FMA loop measures the peak (zmm for avx512 and up, ymm for avx2).
func fmaLevel() isa.Level {
	if isa.Supported(isa.LevelAVX512) {
		return isa.LevelAVX512
	}
	if isa.Supported(isa.LevelAVX2) {
		return isa.LevelAVX2
	}
	return isa.LevelRef
}

// instrPeak measures the peak of the instruction that level's bf16 GEMM is built on, by wall clock.
func instrPeak(threads int, level isa.Level, seconds float64) (float64, error) {
	return measurePeak("dot peak", threads, level, true, seconds)
}

// fmaPeak measures the fp32 FMA peak on threads threads (C's tdxl_isa_peak), by wall clock.
func fmaPeak(threads int, seconds float64) (float64, error) {
	return measurePeak("fma peak", threads, fmaLevel(), false, seconds)
}

func measurePeak(what string, threads int, level isa.Level, dot bool, seconds float64) (float64, error) {
	c, err := isa.NewCtx(threads, level)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer c.Close()
	g, _, err := c.Peak(dot, seconds)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return g, nil
}

// peakRSS reads VmHWM from /proc/self/status (bytes; 0 if unavailable).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
