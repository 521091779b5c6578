package testtee

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SimulatedOptions are the plain (command-line) settings of
// `tdxl-gateway --tee=simulated`. Empty strings take TDXOptions' defaults.
type SimulatedOptions struct {
	MRTD                string // 96 hex digits
	RTMR0, RTMR1, RTMR2 string // 96 hex digits each
	Debug               bool   // set TD_ATTRIBUTES.DEBUG
	TCBStatus           string // a PCS TCB status, e.g. "OutOfDate"; "" = UpToDate
	Seed                string // deterministic keys; "" = random
}

// TDXOptions converts s into TDXOptions (collateral embedded in the
// evidence, since no verifier can reach a PCS for the simulated platform).
func (s SimulatedOptions) TDXOptions() (TDXOptions, error) {
	o := TDXOptions{Debug: s.Debug, TCBStatus: s.TCBStatus, EmbedCollateral: true}
	if s.Seed != "" {
		o.Seed = []byte(s.Seed)
	}
	if s.TCBStatus != "" && !ValidTCBStatus(s.TCBStatus) {
		return o, fmt.Errorf("testtee: TCB status %q is not one of UpToDate, SWHardeningNeeded, ConfigurationNeeded, "+
			"ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked", s.TCBStatus)
	}
	for _, f := range []struct {
		name string
		val  string
		dst  *[]byte
	}{{"MRTD", s.MRTD, &o.MRTD}, {"RTMR0", s.RTMR0, &o.RTMR[0]}, {"RTMR1", s.RTMR1, &o.RTMR[1]}, {"RTMR2", s.RTMR2, &o.RTMR[2]}} {
		if f.val == "" {
			continue
		}
		b, err := hex.DecodeString(strings.TrimSpace(f.val))
		if err != nil || len(b) != 48 {
			return o, fmt.Errorf("testtee: %s must be 48 bytes as 96 hex digits", f.name)
		}
		*f.dst = b
	}
	return o, nil
}

// NewSimulated builds the simulated TD of `--tee=simulated`.
func NewSimulated(s SimulatedOptions) (*TDX, error) {
	o, err := s.TDXOptions()
	if err != nil {
		return nil, err
	}
	return NewTDX(o)
}

// WriteRootPEM writes the root certificate to path atomically (temporary
// file in the same directory, then rename), mode 0644.
func (t *TDX) WriteRootPEM(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing root certificate: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, werr := f.Write(t.RootPEM())
	cerr := f.Close()
	if werr != nil || cerr != nil {
		return fmt.Errorf("writing root certificate %s: %w", path, errors.Join(werr, cerr))
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("writing root certificate: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing root certificate: %w", err)
	}
	return nil
}
