// Command tdxl-gateway is tdxl's attested TLS front: it serves the backend
// over TLS 1.3 with a key bound into a TEE quote, publishes the evidence at
// /.well-known/tdxl/attestation and signs a receipt for each generation.
// See `tdxl-gateway --help` and README.md, section "Gateway".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tdxl/tdxl/gateway"
)

// Exit codes.
const (
	exitOK      = 0 // clean shutdown (SIGINT/SIGTERM)
	exitFailure = 1 // runtime failure: no TEE, listen/cert/quote errors
	exitUsage   = 2 // bad flags or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: flags → gateway.Config → Run.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		printError(stderr, err)
		return exitUsage
	}
	if o.showVersion {
		fmt.Fprintln(stdout, "tdxl-gateway", version())
		return exitOK
	}
	logger := newLogger(stderr, o.logLevel)
	cfg, err := o.config(logger)
	if err != nil {
		printError(stderr, err)
		if errors.Is(err, gateway.ErrConfig) || errors.Is(err, errUsage) {
			return exitUsage
		}
		return exitFailure
	}
	g, err := gateway.New(cfg)
	if err != nil {
		printError(stderr, err)
		return exitUsage
	}
	if err := g.Run(ctx); err != nil {
		printError(stderr, err)
		return exitFailure
	}
	return exitOK
}

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "tdxl-gateway: error: %v\n", err)
	var h hinted
	if errors.As(err, &h) {
		fmt.Fprintf(w, "tdxl-gateway: hint: %s\n", h.hint)
	}
}

// hinted is an error with a hint line for the user.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }
