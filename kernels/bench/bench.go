// Package bench is the end-to-end benchmark of the kernels core (`tdxl-backend bench`, `make bench`):
// it synthesizes (once, cached outside the repository) a random-weight checkpoint of the chosen
// preset, loads it and times text encoders, every UNet step, the VAE decoder and PNG encoding, then
// prints peak RSS, the thread count, the kernel path and one JSON line of headline figures.
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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tdxl/tdxl/kernels"
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
	steps, repeat, threads   int
	seed                     int64
	bf16                     bool
}

func parse(args []string, stderr io.Writer) (*config, int) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.preset, "preset", "sdxl-turbo", "synthesized model preset when --model-dir is not given: "+strings.Join(synth.Presets(), " | "))
	fs.StringVar(&c.modelDir, "model-dir", "", "diffusers model folder (default: synthesize the preset into the cache)")
	fs.StringVar(&c.prompt, "prompt", "A panda listening to music with headphones. highly detailed, 8k.", "prompt")
	fs.IntVar(&c.batch, "batch", 1, "images per run")
	fs.IntVar(&c.height, "height", 512, "image height")
	fs.IntVar(&c.width, "width", 512, "image width")
	fs.IntVar(&c.steps, "step", 4, "denoising steps")
	fs.IntVar(&c.repeat, "repeat", 1, "timed runs")
	fs.IntVar(&c.threads, "threads", 0, "threads (0 = all cores)")
	fs.Int64Var(&c.seed, "seed", 0, "noise seed")
	fs.BoolVar(&c.bf16, "bf16", false, "bf16 weights (accepted for script compatibility; the reference path computes in fp32)")
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
	if fs.NArg() != 0 || c.repeat < 1 || c.batch < 1 || c.steps < 1 || c.threads < 0 {
		fmt.Fprintln(stderr, "bench: error: bad arguments (repeat, batch, step must be >= 1; threads >= 0; no positional arguments)")
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
	t0 := time.Now()
	p, err := kernels.Open(dir, kernels.Options{Threads: c.threads})
	if err != nil {
		return err
	}
	defer p.Close()
	load := time.Since(t0)
	info := p.Info()
	fmt.Fprintf(stdout, "load: %.2f s  (model %s, kernel path %s, %d threads)\n", secs(load), info.Model, info.ISA, info.Threads)
	if c.bf16 {
		fmt.Fprintln(stdout, "note: --bf16 accepted; the reference kernel path computes in fp32")
	}
	fmt.Fprintf(stdout, "run: %dx%d, %d steps, batch %d, %d repeat(s)\n", c.width, c.height, c.steps, c.batch, c.repeat)
	var last *kernels.Result
	var pngTime time.Duration
	for r := 0; r < c.repeat; r++ {
		res, err := p.Generate(ctx, kernels.Request{Prompts: []string{c.prompt}, Width: c.width, Height: c.height,
			Steps: c.steps, Batch: c.batch, Seed: c.seed + int64(r)})
		if err != nil {
			return err
		}
		tp := time.Now()
		for _, im := range res.Images {
			if err := png.Encode(io.Discard, im); err != nil {
				return fmt.Errorf("png: %w", err)
			}
		}
		pngTime = time.Since(tp)
		tm := res.Timings
		fmt.Fprintf(stdout, "run %d: text encoders %.2f s", r+1, secs(tm.TextEncoders))
		for i, s := range tm.UNetSteps {
			fmt.Fprintf(stdout, ", unet step %d %.2f s", i+1, secs(s))
		}
		fmt.Fprintf(stdout, ", vae %.2f s, png %.3f s, total %.2f s (%.3f images/s)\n", secs(tm.VAE), secs(pngTime),
			secs(tm.Total), float64(c.batch)/secs(tm.Total))
		last = res
	}
	rss := peakRSS()
	fmt.Fprintf(stdout, "peak RSS: %.2f GiB (VmHWM)\n", float64(rss)/(1<<30))
	tm := last.Timings
	var unet time.Duration
	for _, s := range tm.UNetSteps {
		unet += s
	}
	head := map[string]any{
		"isa": info.ISA, "threads": info.Threads, "load_s": secs(load), "te_s": secs(tm.TextEncoders),
		"unet_step_s": secs(unet) / float64(len(tm.UNetSteps)), "vae_s": secs(tm.VAE), "png_s": secs(pngTime),
		"image_s": secs(tm.Total) / float64(c.batch), "peak_rss_bytes": rss, "width": c.width, "height": c.height,
		"steps": c.steps, "batch": c.batch,
	}
	b, _ := json.Marshal(head)
	fmt.Fprintln(stdout, string(b))
	return nil
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
