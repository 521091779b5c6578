package synth

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tdxl/tdxl/kernels/safetensors"
)

// Exit codes of Main.
const (
	ExitOK    = 0
	ExitError = 1 // writing failed (or was cancelled)
	ExitUsage = 2 // bad flags
)

// Main implements `tdxl-backend synth --preset tiny|sdxl-turbo --seed N --out DIR
// [--dtype F16|F32|BF16] [--tokenizer DIR]`. Progress goes to stderr; the
// final line "synth: wrote DIR (...)" goes to stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	preset := fs.String("preset", "tiny", "model preset: "+strings.Join(Presets(), " | "))
	seed := fs.Int64("seed", 0, "seed of the random weights")
	out := fs.String("out", "", "destination folder (must not exist)")
	dtype := fs.String("dtype", "", "weight dtype F32 | F16 | BF16 (default: F32 for tiny, F16 for sdxl-turbo)")
	tok := fs.String("tokenizer", "", "folder with vocab.json + merges.txt to use (default: a generated vocabulary)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tdxl-backend synth --preset tiny|sdxl-turbo --seed N --out DIR [--dtype F16|F32|BF16] [--tokenizer DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "synth: error: --out DIR is required (and no positional arguments)")
		return ExitUsage
	}
	opts := Options{Preset: *preset, Seed: *seed, DType: safetensors.DType(strings.ToUpper(*dtype)), Tokenizer: *tok}
	total, err := Size(opts)
	if err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return ExitUsage
	}
	start, last, lastFile := time.Now(), time.Time{}, ""
	opts.Progress = func(p Progress) {
		now := time.Now()
		if p.File == lastFile && now.Sub(last) < time.Second && p.DoneBytes != p.TotalBytes {
			return
		}
		last, lastFile = now, p.File
		fmt.Fprintf(stderr, "synth: %5.1f%% %s (%s of %s)\n", 100*float64(p.DoneBytes)/float64(p.TotalBytes),
			p.File, human(p.DoneBytes), human(p.TotalBytes))
	}
	fmt.Fprintf(stderr, "synth: writing preset %s (seed %d, %s weights) to %s\n", opts.Preset, opts.Seed, human(total), *out)
	if err := Write(ctx, *out, opts); err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return ExitError
	}
	fmt.Fprintf(stdout, "synth: wrote %s (%s, %s)\n", *out, human(total), time.Since(start).Round(time.Millisecond))
	return ExitOK
}

// errorLine is the one readable line Main prints for err.
func errorLine(err error) string {
	return "synth: error: " + strings.TrimPrefix(err.Error(), "synth: ")
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}
