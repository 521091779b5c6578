package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/tdxl/tdxl/backend"
	"github.com/tdxl/tdxl/kernels"
)

// options are the serve flags, each also settable by an environment
// variable (the flag wins).
type options struct {
	listen, modelDir, outputDir, cacheDir, modelName string
	trustedProxies, logLevel, logFormat, sizes       string
	reserve                                          string
	threads, queue, maxImages                        int
	timeout, grace, retentionAge                     time.Duration
	retentionBytes                                   string
}

const usageHead = `Usage: tdxl-backend [serve] [flags]
       tdxl-backend synth --preset tiny|sdxl-turbo --seed N --out DIR
       tdxl-backend bench [flags]

Serves the text-to-image API (POST /api/text2image, POST /v1/images/generations,
GET /images/<id>/<file>, /healthz, /readyz, /metrics, /openapi.yaml).
Without --model-dir it serves the embedded default: a tiny random-weight model
(its images are noise), synthesized once into the cache dir. Point --model-dir
at a diffusers-layout stabilityai/sdxl-turbo folder for real images.
SIGTERM/SIGINT drain: stop accepting, finish the running job, answer queued
ones 503, exit within --grace.

Flags (each also read from the environment variable shown):
`

// parseOptions parses args with env as the source of defaults. It returns
// flag.ErrHelp for --help.
func parseOptions(args []string, env func(string) (string, bool), stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("tdxl-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var envErr error
	str := func(p *string, name, envName, def, usage string) {
		if v, ok := env(envName); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" ($"+envName+")")
	}
	num := func(p *int, name, envName string, def int, usage string) {
		if v, ok := env(envName); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil && envErr == nil {
				envErr = fmt.Errorf("$%s: %q is not an integer", envName, v)
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" ($"+envName+")")
	}
	dur := func(p *time.Duration, name, envName string, def time.Duration, usage string) {
		if v, ok := env(envName); ok {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil && envErr == nil {
				envErr = fmt.Errorf("$%s: %q is not a duration (e.g. 30s, 10m)", envName, v)
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" ($"+envName+")")
	}
	str(&o.listen, "listen", "TDXL_LISTEN", backend.DefaultListen, "address to serve on")
	str(&o.modelDir, "model-dir", "TDXL_MODEL_DIR", "", "diffusers-layout model folder (default: the embedded tiny random-weight model)")
	str(&o.outputDir, "output-dir", "TDXL_OUTPUT_DIR", backend.DefaultOutputDir, "where images are stored (the seed's outputDirPath)")
	str(&o.cacheDir, "cache-dir", "TDXL_CACHE_DIR", "", "where the default model is synthesized (default $XDG_CACHE_HOME/tdxl or ~/.cache/tdxl)")
	str(&o.modelName, "model-name", "TDXL_MODEL_NAME", "", "meta.input.model (default: the loaded model's name, else stabilityai/sdxl-turbo)")
	num(&o.threads, "threads", "TDXL_THREADS", 0, "compute threads (0 = all cores)")
	str(&o.reserve, "reserve", "TDXL_RESERVE", "", "comma-separated WxH or WxHxBATCH sizes the activation memory is sized for at load, so the first such request allocates nothing (\"\" = grow with the first request of each size)")
	num(&o.queue, "queue", "TDXL_QUEUE", backend.DefaultQueue, "requests that may wait while one runs; more get 429")
	num(&o.maxImages, "max-images", "TDXL_MAX_IMAGES", backend.DefaultMaxImages, "cap on number×batch per request")
	str(&o.sizes, "sizes", "TDXL_SIZES", strings.Join(backend.DefaultSizes, ","), "accepted values of `size`, comma-separated WxH (multiples of 8, 64..2048)")
	dur(&o.timeout, "timeout", "TDXL_TIMEOUT", backend.DefaultTimeout, "per-request timeout, queueing included (504 after it)")
	dur(&o.grace, "grace", "TDXL_GRACE", backend.DefaultGrace, "drain period on SIGTERM before running jobs are cancelled")
	dur(&o.retentionAge, "retention-age", "TDXL_RETENTION_AGE", backend.DefaultRetentionAge, "delete stored images older than this (negative = never)")
	str(&o.retentionBytes, "retention-bytes", "TDXL_RETENTION_BYTES", "2GiB", "delete the oldest images beyond this total (e.g. 500MiB, 2GiB; -1 = no limit)")
	str(&o.trustedProxies, "trusted-proxies", "TDXL_TRUSTED_PROXIES", "127.0.0.0/8,::1/128", "comma-separated CIDRs whose X-Forwarded-Proto/Host are trusted (\"\" = none)")
	str(&o.logLevel, "log-level", "TDXL_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&o.logFormat, "log-format", "TDXL_LOG_FORMAT", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if envErr != nil {
		return nil, envErr
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	return o, nil
}

// config turns options into backend.Config.
func (o *options) config(log *slog.Logger) (backend.Config, error) {
	proxies, err := backend.ParsePrefixes(o.trustedProxies)
	if err != nil {
		return backend.Config{}, err
	}
	rb, err := parseBytes(o.retentionBytes)
	if err != nil {
		return backend.Config{}, err
	}
	if o.queue < 0 || o.maxImages < 1 || o.timeout <= 0 || o.grace <= 0 || o.threads < 0 {
		return backend.Config{}, errors.New("--queue must be >= 0, --max-images >= 1, --timeout and --grace > 0, --threads >= 0")
	}
	queue := o.queue
	if queue == 0 {
		queue = -1 // backend: negative = no waiting
	}
	if o.retentionAge == 0 {
		o.retentionAge = -1
	}
	if rb == 0 {
		rb = -1
	}
	cfg := backend.Config{
		Listen: o.listen, OutputDir: o.outputDir, Queue: queue, MaxImages: o.maxImages,
		Timeout: o.timeout, Grace: o.grace, RetentionAge: o.retentionAge, RetentionBytes: rb,
		TrustedProxies: proxies, ModelName: o.modelName, Logger: log, Sizes: splitList(o.sizes),
	}
	return cfg, cfg.Validate()
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseBytes reads "1234", "500MiB", "2GiB", "10MB" (binary or decimal
// units), or a negative number for "no limit".
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || (n > 0 && n > (1<<62)/mult) {
		return 0, fmt.Errorf("--retention-bytes: %q is not a byte count (e.g. 500MiB, 2GiB)", s)
	}
	return n * mult, nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// serve is the default subcommand. Exit codes: 0 after a drain, 1 when
// serving failed (listen, model load), 2 for usage and configuration errors.
func serve(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	o, err := parseOptions(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "tdxl-backend: error:", err)
		return 2
	}
	log, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tdxl-backend: error:", err)
		return 2
	}
	cfg, err := o.config(log)
	if err != nil {
		fmt.Fprintln(stderr, "tdxl-backend: error:", err)
		return 2
	}
	reserve, err := parseReserve(o.reserve)
	if err != nil {
		fmt.Fprintln(stderr, "tdxl-backend: error:", err)
		return 2
	}
	loader := &modelLoader{dir: o.modelDir, cacheDir: o.cacheDir, threads: o.threads, reserve: reserve, env: env, log: log}
	srv, err := backend.New(cfg, loader.load)
	if err != nil {
		fmt.Fprintln(stderr, "tdxl-backend: error:", err)
		return 2
	}
	err = srv.Run(ctx)
	loader.close()
	if err != nil {
		fmt.Fprintln(stderr, "tdxl-backend: error:", err)
		return 1
	}
	return 0
}

// parseReserve parses --reserve: comma-separated WxH or WxHxBATCH.
func parseReserve(v string) ([]kernels.Size, error) {
	var out []kernels.Size
	for _, item := range splitList(v) {
		parts := strings.Split(item, "x")
		nums := make([]int, len(parts))
		bad := len(parts) < 2 || len(parts) > 3
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 {
				bad = true
			}
			nums[i] = n
		}
		if bad {
			return nil, fmt.Errorf("--reserve: %q is not WxH or WxHxBATCH (e.g. 1024x1024 or 512x512x4)", item)
		}
		s := kernels.Size{Width: nums[0], Height: nums[1], Batch: 1}
		if len(nums) == 3 {
			s.Batch = nums[2]
		}
		out = append(out, s)
	}
	return out, nil
}
