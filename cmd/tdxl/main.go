// Command tdxl is the tdxl client: it verifies a pod's attestation against a policy file before
// anything is sent to it, and then talks to it over a connection pinned to the verified key.
//
//	tdxl verify https://host:8443 --policy p.yaml     verify a pod (exit 0 verified, 2 refused, 3 network/collateral, 1 usage)
//	tdxl curl -d '{"prompt":"..."}' https://host:8443/api/text2image --policy p.yaml
//	tdxl policy lint|derive|explain ...
//
// Output rules: results go to stdout (a table, or JSON with --json); everything else — warnings,
// errors, hints, the verdict summary of curl — goes to stderr with a "tdxl:" prefix, lower case,
// no final period.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"

	"github.com/tdxl/tdxl/verifier"
)

// Exit codes.
const (
	exitOK       = 0
	exitUsage    = 1
	exitRefused  = 2
	exitNetwork  = 3
	exitInternal = 1
)

const usage = `tdxl — verify a tdxl pod before sending it anything, then talk to it over a pinned connection

Usage:
  tdxl verify URL --policy FILE [--json] [--save-bundle FILE] [--trust-root PEM]... [--pccs URL]
              [--cache DIR] [--allow-unattested]
  tdxl verify --offline BUNDLE [--policy FILE] [--trust-root PEM]... [--at RFC3339] [--json]
  tdxl verify --quote quote.bin --collateral DIR --at RFC3339 --policy FILE [--json]
  tdxl verify --report report.bin --certs DIR --at RFC3339 --policy FILE [--json]
  tdxl curl [-X METHOD] [-d DATA | --data-binary @FILE] [-H 'Name: value']... [-o FILE] [-s] [-v]
            URL --policy FILE [--save-images DIR] [--trust-root PEM]... [--pccs URL] [--allow-unattested]
  tdxl policy lint [--strict] FILE...
  tdxl policy derive (--from-bundle FILE | URL) [--trust-root PEM]...
  tdxl policy explain FILE
  tdxl version

Exit codes: 0 verified, 1 usage error, 2 refused (verification or policy), 3 network or collateral
unavailable.

Collateral (Intel TCB info, QE identity, CRLs) comes from Intel PCS, or the PCCS given by --pccs or
$TDXL_PCCS_URL; --cache DIR keeps the last good copy (used for up to --cache-max-stale when the
network fails). --trust-root adds a quote-signing root (a simulated TEE's root, a private PKI):
never needed for real Intel/AMD hardware, and reports say when it was used.

Example:
  tdxl verify https://pod.example:8443 --policy deploy/policies/tdx-strict.yaml --save-bundle pod.json
  tdxl curl -d '{"prompt":"a panda with headphones","number":1}' \
       https://pod.example:8443/api/text2image --policy deploy/policies/tdx-strict.yaml --save-images out/
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "verify":
		return c.verify(args[1:])
	case "curl":
		return c.curl(args[1:])
	case "policy":
		return c.policy(args[1:])
	case "version", "--version":
		fmt.Fprintln(stdout, "tdxl", version())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	return c.usageErr(fmt.Sprintf("unknown command %q", args[0]), "commands: verify, curl, policy, version")
}

type cli struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (c *cli) errorf(format string, a ...any) {
	fmt.Fprintf(c.stderr, "tdxl: error: "+format+"\n", a...)
}

func (c *cli) hint(h string) {
	if h != "" {
		fmt.Fprintf(c.stderr, "tdxl: hint: %s\n", h)
	}
}

func (c *cli) warn(format string, a ...any) {
	fmt.Fprintf(c.stderr, "tdxl: WARNING: "+format+"\n", a...)
}

func (c *cli) usageErr(msg, hint string) int {
	c.errorf("%s", msg)
	c.hint(hint)
	if hint == "" {
		c.hint("run `tdxl help` for usage")
	}
	return exitUsage
}

// fail prints err (one line + hint) and returns the exit code of its class.
func (c *cli) fail(err error) int {
	c.errorf("%s", oneLine(err.Error()))
	c.hint(verifier.Hint(err))
	return exitCode(err)
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, verifier.ErrRefused):
		return exitRefused
	case errors.Is(err, verifier.ErrUnavailable):
		return exitNetwork
	}
	return exitInternal
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// parse parses flags and positional arguments in any order ("URL --policy p" as well as
// "--policy p URL"). "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
