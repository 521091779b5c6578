package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/measure"
	"github.com/tdxl/tdxl/attest/provider"
	"github.com/tdxl/tdxl/attest/testtee"
)

type contextT = context.Context

// evidenceSource is the chosen TEE: its issuer and, where the TEE has
// extendable runtime registers, the RTMR extender.
type evidenceSource struct {
	issuer   attest.Issuer
	extender measure.Extender
}

// issuer opens the --tee evidence source (attest/provider) and, for the
// simulated TEE, writes --simulated-root.
func (o *options) issuer(logger *slog.Logger) (evidenceSource, error) {
	popts := provider.Options{Kind: o.tee, Logger: logger}
	if o.tee == provider.KindSimulated {
		// Check the knobs here so that a bad value is a usage error (exit 2).
		if _, err := o.simulatedOptions(); err != nil {
			return evidenceSource{}, err
		}
		popts.Simulated = testtee.SimulatedOptions{
			MRTD: o.simMRTD, RTMR0: o.simRTMR[0], RTMR1: o.simRTMR[1], RTMR2: o.simRTMR[2],
			Debug: o.simDebug, TCBStatus: o.simTCBStatus, Seed: o.simSeed,
		}
	} else if o.simRoot != "" {
		return evidenceSource{}, hinted{fmt.Errorf("%w: --simulated-root needs --tee simulated", errUsage), "only the simulated TEE has a root to write"}
	}
	src, err := provider.Open(popts)
	switch {
	case errors.Is(err, provider.ErrUnknownKind):
		return evidenceSource{}, hinted{fmt.Errorf("%w: %v", errUsage, err), "use --tee auto, tdx, sev-snp, none or simulated"}
	case errors.Is(err, attest.ErrNoTEE):
		return evidenceSource{}, hinted{err, "run in a TDX or SEV-SNP VM with configfs-tsm or the guest device mounted, or say --tee none to serve UNATTESTED evidence on purpose (--tee simulated for development)"}
	case err != nil:
		return evidenceSource{}, fmt.Errorf("opening the %s evidence source: %w", o.tee, err)
	}
	if src.Simulated != nil && o.simRoot != "" {
		if err := src.Simulated.WriteRootPEM(o.simRoot); err != nil {
			return evidenceSource{}, fmt.Errorf("--simulated-root: %w", err)
		}
		logger.Info("wrote simulated root certificate", "file", o.simRoot)
	}
	return evidenceSource{issuer: src.Issuer, extender: src.Extender}, nil
}
