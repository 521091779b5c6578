// Package provider chooses the evidence source of a gateway from a TEE kind
// ("auto", "tdx", "sev-snp", "none", "simulated") and returns its issuer and,
// where the TEE has runtime registers, its RTMR extender.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/measure"
	"github.com/tdxl/tdxl/attest/snp"
	"github.com/tdxl/tdxl/attest/tdx"
	"github.com/tdxl/tdxl/attest/testtee"
)

// Kinds accepted by Open.
const (
	KindAuto      = "auto"
	KindTDX       = "tdx"
	KindSEVSNP    = "sev-snp"
	KindNone      = "none"
	KindSimulated = "simulated"
)

// ErrUnknownKind: Options.Kind is none of the kinds above.
var ErrUnknownKind = errors.New("provider: unknown TEE kind")

// Options select and configure the evidence source.
type Options struct {
	// Kind is one of the Kind constants. "auto" detects TDX, then SEV-SNP,
	// and fails (wrapping attest.ErrNoTEE) when neither is present: it never
	// falls back to "none" or "simulated", which must be asked for by name.
	Kind string
	// Root prefixes every device path ("" = "/"); tests point it at fake trees.
	Root string
	// TDX and SNP pass further options to the providers (their Root,
	// Logger and Now are overridden by the fields here).
	TDX tdx.Options
	SNP snp.Options
	// Simulated configures KindSimulated.
	Simulated testtee.SimulatedOptions
	// Logger receives detection records and the warnings of none/simulated. nil discards.
	Logger *slog.Logger
	// Now is the evidence clock. nil = time.Now.
	Now func() time.Time
}

// Source is an opened evidence source.
type Source struct {
	// Issuer issues the evidence.
	Issuer attest.Issuer
	// Extender extends RTMR3 (TDX: sysfs under Root; simulated: the
	// simulated TD). nil for SEV-SNP and none.
	Extender measure.Extender
	// Simulated is the simulated TD for KindSimulated (its RootPEM,
	// WriteRootPEM, Getter...), else nil.
	Simulated *testtee.TDX
	// Kind is the kind actually opened ("auto" resolved).
	Kind string
}

// Open returns the evidence source for opts.Kind.
func Open(opts Options) (*Source, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	to := opts.TDX
	to.Root, to.Logger, to.Now = opts.Root, opts.Logger, opts.Now
	so := opts.SNP
	so.Root, so.Logger, so.Now = opts.Root, opts.Logger, opts.Now
	switch opts.Kind {
	case KindTDX:
		p, err := tdx.New(to)
		if err != nil {
			return nil, err
		}
		return &Source{Issuer: p, Extender: measure.SysfsExtender{Root: opts.Root}, Kind: KindTDX}, nil
	case KindSEVSNP:
		p, err := snp.New(so)
		if err != nil {
			return nil, err
		}
		return &Source{Issuer: p, Kind: KindSEVSNP}, nil
	case KindAuto:
		if _, err := tdx.Detect(to); err == nil {
			return Open(Options{Kind: KindTDX, Root: opts.Root, TDX: opts.TDX, Logger: opts.Logger, Now: opts.Now})
		}
		if _, err := snp.Detect(so); err == nil {
			return Open(Options{Kind: KindSEVSNP, Root: opts.Root, SNP: opts.SNP, Logger: opts.Logger, Now: opts.Now})
		}
		return nil, fmt.Errorf("%w: neither Intel TDX (configfs-tsm tdx_guest, %s) nor AMD SEV-SNP (configfs-tsm sev_guest, %s) found; "+
			"ask for unattested mode explicitly (none) if that is what you want", attest.ErrNoTEE, tdx.DevicePath, snp.DevicePath)
	case KindNone:
		opts.Logger.Warn("UNATTESTED mode: evidence carries no quote; clients must opt in to use this server")
		return &Source{Issuer: None{Now: opts.Now}, Kind: KindNone}, nil
	case KindSimulated:
		o, err := opts.Simulated.TDXOptions()
		if err != nil {
			return nil, err
		}
		o.Now = opts.Now
		td, err := testtee.NewTDX(o)
		if err != nil {
			return nil, err
		}
		opts.Logger.Warn("SIMULATED TEE: quotes are signed by a test root that only an explicitly told verifier trusts; development only")
		return &Source{Issuer: td, Extender: td, Simulated: td, Kind: KindSimulated}, nil
	}
	return nil, fmt.Errorf("%w %q (want auto, tdx, sev-snp, none or simulated)", ErrUnknownKind, opts.Kind)
}

// None is the explicit unattested issuer: evidence with TEE "none",
// Unattested set and no quote.
type None struct {
	// Now is the clock. nil = time.Now.
	Now func() time.Time
}

// TEE returns attest.TEENone.
func (None) TEE() attest.TEE { return attest.TEENone }

// Issue returns unattested evidence (reportData is not bound to anything).
func (n None) Issue(ctx context.Context, _ [64]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now
	if n.Now != nil {
		now = n.Now
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEENone, Unattested: true, Time: now().UTC()}, nil
}
