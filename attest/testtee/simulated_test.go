package testtee

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/verify"
)

func TestNewSimulated(t *testing.T) {
	mrtd := strings.Repeat("ab", 48)
	td, err := NewSimulated(SimulatedOptions{MRTD: mrtd, RTMR1: strings.Repeat("01", 48), Debug: true,
		TCBStatus: StatusOutOfDate, Seed: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	o := td.Options()
	if !bytes.Equal(o.MRTD, bytes.Repeat([]byte{0xab}, 48)) || !bytes.Equal(o.RTMR[1], bytes.Repeat([]byte{1}, 48)) ||
		o.TDAttributes[0]&1 != 1 || o.TCBStatus != StatusOutOfDate || !o.EmbedCollateral {
		t.Fatalf("options not applied: %+v", o)
	}
	path := filepath.Join(t.TempDir(), "root.pem")
	if err := td.WriteRootPEM(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !cert.Equal(td.Root()) {
		t.Fatalf("written root differs: %v", err)
	}
	// A verifier trusting the written file accepts the quote's chain
	// (TCB OutOfDate is then reported by the collateral check).
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	raw, _ := td.Quote([64]byte{})
	err = verify.RawTdxQuote(raw, &verify.Options{TrustedRoots: pool, Now: timeSet(testNow)})
	if err != nil {
		t.Fatalf("chain under the written root: %v", err)
	}
	if err := td.WriteRootPEM(filepath.Join(t.TempDir(), "missing", "root.pem")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestSimulatedOptionErrors(t *testing.T) {
	for name, s := range map[string]SimulatedOptions{
		"odd hex":    {MRTD: "abc"},
		"short":      {RTMR0: "abcd"},
		"not hex":    {RTMR2: strings.Repeat("zz", 48)},
		"bad status": {TCBStatus: "Great"},
	} {
		if _, err := NewSimulated(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
