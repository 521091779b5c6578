// Command tdxl-backend serves the text-to-image API (package backend) on tdxl's own inference core
// (package kernels). Subcommands: serve (the default), synth (write a random-weight model) and
// bench (the core's benchmark, kernels/bench). See `tdxl-backend --help`.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tdxl/tdxl/kernels/bench"
	"github.com/tdxl/tdxl/kernels/synth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches the subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serve(ctx, args[1:], os.LookupEnv, stdout, stderr)
		case "synth":
			return synth.Main(ctx, args[1:], stdout, stderr)
		case "bench":
			return bench.Main(ctx, args[1:], stdout, stderr)
		}
	}
	return serve(ctx, args, os.LookupEnv, stdout, stderr)
}
