package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/measure"
)

// MeasureOptions says what MeasureRuntime measures. Empty paths are skipped
// (no event), except GatewayBinary.
type MeasureOptions struct {
	// ModelDir is the diffusers folder the backend serves: measured as
	// attest.EventModel (SHA-256 of the canonical manifest, see
	// measure.ModelManifest; every file read once, progress logged).
	ModelDir string
	// BackendBinary is the backend executable (attest.EventBackendBinary).
	BackendBinary string
	// GatewayBinary is the gateway executable (attest.EventGatewayBinary).
	// Default: os.Executable().
	GatewayBinary string
	// Config is the effective configuration (attest.EventConfig): the
	// SHA-256 of its canonical JSON (see Config.Effective). nil: no event.
	Config any
	// Extender extends RTMR3 (measure.SysfsExtender on a TD, the simulated
	// TD's Extend in simulated mode). nil: events are recorded but not
	// extended, and the evidence says "not extended".
	Extender measure.Extender
	// Logger receives progress; nil = slog.Default().
	Logger *slog.Logger
}

// MeasureRuntime measures the model, the binaries and the configuration, in
// that order, records each as an event and extends RTMR3 with it (see
// measure.Log for the all-or-nothing extension rule).
func MeasureRuntime(ctx context.Context, o MeasureOptions) (Runtime, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	log := measure.NewLog(o.Extender, logger)
	record := func(typ attest.EventType, m [32]byte, desc string) error {
		if _, err := log.Record(typ, m, desc); err != nil {
			return fmt.Errorf("recording %s event: %w", typ, err)
		}
		return nil
	}
	if o.ModelDir != "" {
		man, err := measure.ModelManifest(ctx, o.ModelDir, measure.ManifestOptions{Logger: logger})
		if err != nil {
			return Runtime{}, fmt.Errorf("measuring model: %w", err)
		}
		desc := fmt.Sprintf("%s (%d files, %d bytes)", o.ModelDir, len(man.Entries), man.TotalSize())
		if err := record(attest.EventModel, man.Digest(), desc); err != nil {
			return Runtime{}, err
		}
	}
	if o.BackendBinary != "" {
		d, err := measure.FileDigest(ctx, o.BackendBinary)
		if err != nil {
			return Runtime{}, fmt.Errorf("measuring backend binary: %w", err)
		}
		if err := record(attest.EventBackendBinary, d, filepath.Base(o.BackendBinary)); err != nil {
			return Runtime{}, err
		}
	}
	gw := o.GatewayBinary
	if gw == "" {
		exe, err := os.Executable()
		if err != nil {
			return Runtime{}, fmt.Errorf("finding the gateway executable: %w", err)
		}
		gw = exe
	}
	d, err := measure.FileDigest(ctx, gw)
	if err != nil {
		return Runtime{}, fmt.Errorf("measuring gateway binary: %w", err)
	}
	if err := record(attest.EventGatewayBinary, d, filepath.Base(gw)); err != nil {
		return Runtime{}, err
	}
	if o.Config != nil {
		d, canon, err := measure.ConfigDigest(o.Config)
		if err != nil {
			return Runtime{}, fmt.Errorf("measuring configuration: %w", err)
		}
		if err := record(attest.EventConfig, d, "effective configuration"); err != nil {
			return Runtime{}, err
		}
		logger.Info("effective configuration", "canonical_json", string(canon))
	}
	ext, status := log.Extended()
	if !ext {
		logger.Warn("runtime measurements NOT extended into RTMR3: verifiers treat the event log as unbound", "reason", status)
	}
	return Runtime{Events: log.Events(), Extended: ext, Status: status}, nil
}

// EffectiveConfig is the part of the configuration the gateway measures
// (attest.EventConfig): what decides how it treats requests and evidence.
// Per-pod values (host names, listen addresses' interfaces) and secrets are
// left out so that every replica of one deployment has the same digest.
type EffectiveConfig struct {
	TEE              string   `json:"tee"`
	Backend          string   `json:"backend"`
	ModelDir         string   `json:"model_dir,omitempty"`
	TLS              string   `json:"tls"`
	ACMECA           string   `json:"acme_ca,omitempty"`
	ACMEDomains      []string `json:"acme_domains,omitempty"`
	MaxHeaderBytes   int      `json:"max_header_bytes"`
	MaxBodyBytes     int64    `json:"max_body_bytes"`
	MaxResponseBytes int64    `json:"max_response_bytes"`
	ProxyTimeout     string   `json:"proxy_timeout"`
	NonceRate        float64  `json:"nonce_rate"`
	NonceBurst       int      `json:"nonce_burst"`
}

// Effective returns the measured view of cfg (defaults applied). modelDir
// is recorded as given.
func (c Config) Effective(modelDir string) EffectiveConfig {
	d := c.withDefaults()
	e := EffectiveConfig{
		Backend: d.Backend, ModelDir: modelDir, TLS: string(d.TLS),
		MaxHeaderBytes: d.MaxHeaderBytes, MaxBodyBytes: d.MaxBodyBytes, MaxResponseBytes: d.MaxResponseBytes,
		ProxyTimeout: d.ProxyTimeout.String(), NonceRate: d.NonceRate, NonceBurst: d.NonceBurst,
	}
	if d.Issuer != nil {
		e.TEE = string(d.Issuer.TEE())
	}
	if d.TLS == TLSACME {
		e.ACMECA, e.ACMEDomains = d.ACME.CA, d.ACME.Domains
	}
	return e
}
