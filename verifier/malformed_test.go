package verifier

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tdxl/tdxl/policy"
)

// TestForgedQEAuthSizeIsMalformedNotPanic: go-tdx-guest's abi parser slices by
// the QE auth data size read from the quote without checking it against the
// buffer (found by FuzzVerifyTDXQuote). A quote with a forged size must be
// refused as malformed evidence, not crash the client.
func TestForgedQEAuthSizeIsMalformedNotPanic(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors/dcapqvl-tdx-quote4/quote.bin")
	if err != nil {
		t.Fatal(err)
	}
	const qeAuthSizeHigh = 1219 // high byte of the QE authentication data size
	forged := append([]byte{}, raw...)
	forged[qeAuthSizeHigh] = 0xff
	pol, err := policy.Parse("p.yaml", []byte("apiVersion: tdxl/v1\ntdx: {tcb: {allowMissingCRLs: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Policy: pol, Roots: DefaultRoots(), Now: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		Getter: DirGetter("testdata/vectors/dcapqvl-tdx-quote4/collateral")}
	rep, err := VerifyTDXQuote(context.Background(), forged, o)
	if !errors.Is(err, ErrEvidenceMalformed) || !errors.Is(err, ErrRefused) {
		t.Fatalf("forged QE auth size: got %v, want ErrEvidenceMalformed (refused)", err)
	}
	if rep.Verdict == VerdictVerified {
		t.Fatal("forged quote verified")
	}
}
