package backend

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Defaults of Config; a zero field in Config means "use the default".
const (
	DefaultListen         = ":5000"
	DefaultOutputDir      = "/tmp/sd"
	DefaultQueue          = 16
	DefaultMaxImages      = 16
	DefaultTimeout        = 30 * time.Minute
	DefaultGrace          = 30 * time.Second
	DefaultRetentionAge   = 24 * time.Hour
	DefaultRetentionBytes = int64(2 << 30) // 2 GiB
	DefaultMaxBodyBytes   = int64(1 << 20) // 1 MiB
	DefaultModelName      = "stabilityai/sdxl-turbo"
	// MaxSteps is the largest accepted `step`.
	MaxSteps = 50
)

// DefaultTrustedProxies are the peers whose X-Forwarded-Proto/Host headers
// are believed: loopback only, where tdxl-gateway runs in the same pod.
var DefaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// Config configures a Server. The zero value of every field means its
// documented default (see the Default* constants).
type Config struct {
	// Listen is the TCP address to serve on ("" = ":5000").
	Listen string
	// OutputDir is where images are stored, one folder per request id
	// ("" = "/tmp/sd", the seed's outputDirPath).
	OutputDir string
	// Queue is the number of requests that may wait for the engine while
	// one runs; more get 429 (0 = 16; negative = no waiting at all).
	Queue int
	// MaxImages caps number×batch of one request (0 = 16).
	MaxImages int
	// Sizes are the accepted values of `size` (nil = DefaultSizes, the
	// seed's 512x512 and 1024x1024).
	Sizes []string
	// Timeout bounds one request, queueing included (0 = 30m).
	Timeout time.Duration
	// Grace bounds the drain on shutdown (0 = 30s): running jobs may finish
	// within it, then they are cancelled.
	Grace time.Duration
	// RetentionAge: stored images older than this are deleted (0 = 24h;
	// negative = never by age).
	RetentionAge time.Duration
	// RetentionBytes: when the store exceeds this many bytes the oldest
	// requests' images are deleted (0 = 2 GiB; negative = no limit).
	RetentionBytes int64
	// TrustedProxies are the peer address ranges whose X-Forwarded-Proto and
	// X-Forwarded-Host headers are used to build image URLs (nil = loopback;
	// an empty non-nil slice trusts nobody).
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds a request body (0 = 1 MiB); larger bodies get 413.
	MaxBodyBytes int64
	// ModelName overrides meta.input.model ("" = the engine's Info().Model,
	// or "stabilityai/sdxl-turbo" when that is empty).
	ModelName string
	// Logger receives structured logs (nil = slog.Default()).
	Logger *slog.Logger
	// Now is the clock (nil = time.Now); tests inject one for retention.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.OutputDir == "" {
		c.OutputDir = DefaultOutputDir
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	} else if c.Queue < 0 {
		c.Queue = 0
	}
	if c.MaxImages == 0 {
		c.MaxImages = DefaultMaxImages
	}
	if c.Sizes == nil {
		c.Sizes = DefaultSizes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.RetentionAge == 0 {
		c.RetentionAge = DefaultRetentionAge
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = DefaultRetentionBytes
	}
	if c.TrustedProxies == nil {
		c.TrustedProxies = DefaultTrustedProxies
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// Validate reports the first invalid field (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxImages < 1:
		return fmt.Errorf("%w: max images %d must be at least 1", ErrConfig, c.MaxImages)
	case c.Timeout < 0:
		return fmt.Errorf("%w: timeout %v must be positive", ErrConfig, c.Timeout)
	case c.Grace < 0:
		return fmt.Errorf("%w: grace %v must be positive", ErrConfig, c.Grace)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("%w: max body bytes %d must be positive", ErrConfig, c.MaxBodyBytes)
	}
	if _, err := ParseSizes(c.Sizes); err != nil {
		return err
	}
	return nil
}

// ParsePrefixes parses a comma-separated list of CIDRs or bare addresses
// (a bare address means just that host), as --trusted-proxies takes it.
// The empty string gives an empty, non-nil list: trust nobody.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, f := range splitComma(s) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%w: trusted proxy %q is neither a CIDR nor an address", ErrConfig, f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
