package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/gateway"
)

const usage = `tdxl-gateway — attested TLS front for tdxl-backend

Usage:
  tdxl-gateway [flags]

It terminates TLS 1.3 with a key bound into a TEE quote, serves the evidence at
GET /.well-known/tdxl/attestation[?nonce=HEX], proxies everything else to the
backend and signs a receipt (header Tdxl-Receipt) for every generation.

Flags (each also read from the environment as TDXL_GATEWAY_<NAME>, e.g.
TDXL_GATEWAY_BACKEND; a flag given on the command line wins):
%s
Exit codes: 0 clean shutdown, 1 runtime failure (no TEE, listen, certificate or
quote errors), 2 bad flags or configuration.

Examples:
  tdxl-gateway --backend http://127.0.0.1:5000 --model-dir /models/sdxl-turbo
  tdxl-gateway --tee simulated --simulated-root root.pem --backend http://127.0.0.1:5000
  tdxl-gateway --tls acme --acme-domains gw.example.com --acme-email ops@example.com --listen :443
`

var (
	errHelp  = errors.New("help requested")
	errUsage = errors.New("invalid usage")
)

// options are the parsed flags.
type options struct {
	tee, listen, backend, modelDir, backendBinary   string
	tlsMode, certFile, keyFile                      string
	acmeEmail, acmeDomains, acmeCA, acmeStorage     string
	acmeHTTPPort                                    int
	maxBody                                         int64
	nonceRate                                       float64
	nonceBurst                                      int
	selfSignedValidity, proxyTimeout, shutdownGrace time.Duration
	logLevel                                        string
	showVersion                                     bool

	simRoot, simMRTD, simTCBStatus, simSeed string
	simRTMR                                 [3]string
	simDebug                                bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("tdxl-gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.tee, "tee", "auto", "evidence source: auto (TDX, then SEV-SNP; fails if neither), tdx, sev-snp, none (UNATTESTED, explicit), simulated (test TEE, development only)")
	fs.StringVar(&o.listen, "listen", ":8443", "TLS listen address")
	fs.StringVar(&o.backend, "backend", "http://127.0.0.1:5000", "backend base URL: http://127.0.0.1:PORT or unix:/path/to.sock")
	fs.StringVar(&o.modelDir, "model-dir", "", "model folder the backend serves; measured at start (event \"model\")")
	fs.StringVar(&o.backendBinary, "backend-binary", "", "backend executable to measure (default: tdxl-backend next to this executable, if present)")
	fs.StringVar(&o.tlsMode, "tls", "self-signed", "certificate source: self-signed (in-memory key, evidence in the certificate), acme, files")
	fs.StringVar(&o.certFile, "tls-cert", "", "certificate PEM file (--tls files)")
	fs.StringVar(&o.keyFile, "tls-key", "", "private key PEM file (--tls files)")
	fs.StringVar(&o.acmeEmail, "acme-email", "", "ACME account e-mail (--tls acme)")
	fs.StringVar(&o.acmeDomains, "acme-domains", "", "comma-separated domain names (--tls acme)")
	fs.StringVar(&o.acmeCA, "acme-ca", certmagic.LetsEncryptProductionCA, "ACME directory URL (--tls acme)")
	fs.StringVar(&o.acmeStorage, "acme-storage", "", "directory for ACME account and certificate keys (default: memory only; keys never touch disk, certificates are re-obtained on each start)")
	fs.IntVar(&o.acmeHTTPPort, "acme-http-port", 0, "also answer HTTP-01 challenges on this port (0: TLS-ALPN-01 on --listen only)")
	fs.Int64Var(&o.maxBody, "max-body-bytes", 1<<20, "largest request body proxied")
	fs.Float64Var(&o.nonceRate, "nonce-rate", 1, "fresh (nonce) quotes per second per client IP")
	fs.IntVar(&o.nonceBurst, "nonce-burst", 5, "burst of fresh quotes per client IP")
	fs.DurationVar(&o.selfSignedValidity, "self-signed-validity", 7*24*time.Hour, "lifetime of a self-signed certificate (a new key is made after 2/3 of it)")
	fs.DurationVar(&o.proxyTimeout, "proxy-timeout", gateway.DefaultProxyTimeout, "longest a proxied request (a generation) may take; above the backend's --timeout (30m) so its own 504 reaches the client")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long running requests may finish")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.simRoot, "simulated-root", "", "--tee simulated: write the simulated root certificate (PEM) to this file, for `tdxl verify --trust-root FILE`")
	fs.StringVar(&o.simMRTD, "simulated-mrtd", "", "--tee simulated: MRTD (96 hex digits)")
	for i := range o.simRTMR {
		fs.StringVar(&o.simRTMR[i], fmt.Sprintf("simulated-rtmr%d", i), "", fmt.Sprintf("--tee simulated: RTMR%d (96 hex digits)", i))
	}
	fs.BoolVar(&o.simDebug, "simulated-debug", false, "--tee simulated: set the TD's DEBUG attribute")
	fs.StringVar(&o.simTCBStatus, "simulated-tcb-status", "", "--tee simulated: TCB status in the fake PCS (UpToDate, SWHardeningNeeded, OutOfDate, Revoked, ...)")
	fs.StringVar(&o.simSeed, "simulated-seed", "", "--tee simulated: seed for deterministic test keys (default random)")

	printUsage := func() {
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, usage, b.String())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
			return nil, errHelp
		}
		return nil, hinted{fmt.Errorf("%w: %v", errUsage, err), "see tdxl-gateway --help"}
	}
	if fs.NArg() > 0 {
		return nil, hinted{fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0)), "all options are flags; see tdxl-gateway --help"}
	}
	if err := applyEnv(fs); err != nil {
		return nil, err
	}
	return o, nil
}

// applyEnv sets every flag not given on the command line from
// TDXL_GATEWAY_<NAME> (dashes as underscores, upper case).
func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "TDXL_GATEWAY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if set[f.Name] || !ok || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%w: %s=%q: %v", errUsage, env, v, e)
		}
	})
	return err
}

// config turns the flags into a gateway.Config (issuer, measurements
// included).
func (o *options) config(logger *slog.Logger) (gateway.Config, error) {
	cfg := gateway.Config{
		Listen: o.listen, Backend: o.backend, Version: version(), TLS: gateway.TLSMode(o.tlsMode),
		CertFile: o.certFile, KeyFile: o.keyFile, SelfSignedValidity: o.selfSignedValidity,
		MaxBodyBytes: o.maxBody, NonceRate: o.nonceRate, NonceBurst: o.nonceBurst, Logger: logger,
		ProxyTimeout: o.proxyTimeout, ShutdownGrace: o.shutdownGrace,
	}
	if cfg.TLS == gateway.TLSACME {
		cfg.ACME = gateway.ACMEConfig{CA: o.acmeCA, Email: o.acmeEmail, HTTPPort: o.acmeHTTPPort}
		for _, d := range strings.Split(o.acmeDomains, ",") {
			if d = strings.TrimSpace(d); d != "" {
				cfg.ACME.Domains = append(cfg.ACME.Domains, d)
			}
		}
		if o.acmeStorage != "" {
			logger.Warn("ACME keys will be written to --acme-storage: keep it on TD-private storage (tmpfs inside the TD)", "dir", o.acmeStorage)
			cfg.ACME.Storage = &certmagic.FileStorage{Path: o.acmeStorage}
		}
	}
	if err := cfg.CheckSettings(); err != nil {
		return cfg, err
	}
	src, err := o.issuer(logger)
	if err != nil {
		return cfg, err
	}
	cfg.Issuer = src.issuer
	backendBin := o.backendBinary
	if backendBin == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "tdxl-backend"); fileExists(p) {
				backendBin = p
			}
		}
	}
	effective := cfg.Effective(o.modelDir)
	if o.tee == "simulated" {
		effective.TEE = "simulated"
	}
	cfg.Measure = func(ctx contextT) (gateway.Runtime, error) {
		if backendBin == "" {
			logger.Warn("no backend binary to measure (give --backend-binary): the event log will lack backend-binary")
		}
		return gateway.MeasureRuntime(ctx, gateway.MeasureOptions{
			ModelDir: o.modelDir, BackendBinary: backendBin, Config: effective,
			Extender: src.extender, Logger: logger,
		})
	}
	return cfg, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// simulatedOptions builds the test TEE's options from the flags.
func (o *options) simulatedOptions() (testtee.TDXOptions, error) {
	var to testtee.TDXOptions
	if o.simSeed != "" {
		to.Seed = []byte(o.simSeed)
	}
	var err error
	if to.MRTD, err = hex48("--simulated-mrtd", o.simMRTD); err != nil {
		return to, err
	}
	for i, v := range o.simRTMR {
		if to.RTMR[i], err = hex48(fmt.Sprintf("--simulated-rtmr%d", i), v); err != nil {
			return to, err
		}
	}
	to.Debug = o.simDebug
	if o.simTCBStatus != "" && !testtee.ValidTCBStatus(o.simTCBStatus) {
		return to, hinted{fmt.Errorf("%w: --simulated-tcb-status %q is not a TCB status", errUsage, o.simTCBStatus),
			"use UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded or Revoked"}
	}
	to.TCBStatus = o.simTCBStatus
	to.EmbedCollateral = true
	return to, nil
}

func hex48(name, v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != 48 {
		return nil, hinted{fmt.Errorf("%w: %s must be 48 bytes as 96 hex digits", errUsage, name), "e.g. copy the value from `tdxl policy derive` output"}
	}
	return b, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// version is the module version from the build info, or "dev"; the link
// flag -X main.versionOverride=... wins.
var versionOverride string

func version() string {
	if versionOverride != "" {
		return versionOverride
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
