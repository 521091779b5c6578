// Command kbench runs the kernels benchmark (package kernels/bench) on its own, for `make
// bench-kernels`; `tdxl-backend bench` runs the same Main.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/tdxl/tdxl/kernels/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
