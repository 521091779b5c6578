package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/measure"
	"github.com/tdxl/tdxl/attest/tdx"
	"github.com/tdxl/tdxl/attest/testtee"
)

type contextT = context.Context

// evidenceSource is the chosen TEE: its issuer and, where the TEE has
// extendable runtime registers, the RTMR extender.
type evidenceSource struct {
	issuer   attest.Issuer
	extender measure.Extender
}

func (o *options) issuer(logger *slog.Logger) (evidenceSource, error) {
	switch o.tee {
	case "tdx":
		p, err := tdx.New(tdx.Options{Logger: logger})
		if err != nil {
			return evidenceSource{}, hinted{err, "run inside an Intel TDX guest with configfs-tsm (/sys/kernel/config/tsm/report) or /dev/tdx_guest mounted"}
		}
		return evidenceSource{issuer: p, extender: measure.SysfsExtender{}}, nil
	case "auto":
		p, err := tdx.New(tdx.Options{Logger: logger})
		if err == nil {
			return evidenceSource{issuer: p, extender: measure.SysfsExtender{}}, nil
		}
		if !errors.Is(err, attest.ErrNoTEE) {
			return evidenceSource{}, err
		}
		return evidenceSource{}, hinted{fmt.Errorf("--tee auto: %w (no TDX guest; SEV-SNP detection is not in this build)", attest.ErrNoTEE),
			"run in a TDX VM, or say --tee none to serve UNATTESTED evidence on purpose (or --tee simulated for development)"}
	case "sev-snp":
		return evidenceSource{}, hinted{fmt.Errorf("%w: --tee sev-snp: the SEV-SNP provider is not in this build yet", errUsage), "use --tee tdx, none or simulated"}
	case "none":
		return evidenceSource{issuer: unattested{}}, nil
	case "simulated":
		to, err := o.simulatedOptions()
		if err != nil {
			return evidenceSource{}, err
		}
		td, err := testtee.NewTDX(to)
		if err != nil {
			return evidenceSource{}, fmt.Errorf("creating the simulated TEE: %w", err)
		}
		logger.Warn("SIMULATED TEE (--tee simulated): quotes are signed by a test root that no real verifier trusts; development only")
		if o.simRoot != "" {
			if err := writeFileAtomic(o.simRoot, td.RootPEM()); err != nil {
				return evidenceSource{}, fmt.Errorf("writing --simulated-root: %w", err)
			}
			logger.Info("wrote simulated root certificate", "file", o.simRoot)
		}
		return evidenceSource{issuer: td.Issuer(), extender: td}, nil
	}
	return evidenceSource{}, hinted{fmt.Errorf("%w: --tee %q", errUsage, o.tee), "use auto, tdx, sev-snp, none or simulated"}
}

// unattested is the explicit --tee=none issuer: evidence with no quote,
// marked Unattested.
// TODO(E1): switch to attest's own none provider once it lands.
type unattested struct{}

func (unattested) TEE() attest.TEE { return attest.TEENone }
func (unattested) Issue(context.Context, [64]byte) (*attest.Evidence, error) {
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEENone, Unattested: true, Time: time.Now().UTC()}, nil
}

// writeFileAtomic writes data to path via a temporary file and rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
