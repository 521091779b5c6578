package verifier

import (
	"os"
	"path/filepath"
	"testing"
)

// Our own signature checks accept every real quote and refuse a flipped byte in each signed part.
func TestCheckQuoteSignatures(t *testing.T) {
	files, _ := filepath.Glob("testdata/vectors/*/quote.bin")
	if len(files) != 10 {
		t.Fatalf("%d quotes", len(files))
	}
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		q, err := parseTDXQuote(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := checkQuoteSignatures(q); err != nil {
			t.Errorf("%s: real quote refused: %v", f, err)
		}
	}
	raw, _ := os.ReadFile("testdata/vectors/dcapqvl-tdx-quote4/quote.bin")
	const qeReport = 0x27C + 64 + 64 + 2 + 4
	for name, off := range map[string]int{
		"header":              0x08,
		"body (MRTD)":         0x30 + 0x88,
		"body (REPORTDATA)":   0x30 + 0x208,
		"attestation key":     0x27C + 64 + 5,
		"QE report":           qeReport + 0x10,
		"QE report signature": qeReport + 384 + 3,
		"QE auth data":        qeReport + 384 + 64 + 2,
	} {
		m := append([]byte(nil), raw...)
		m[off] ^= 0x01
		q, err := parseTDXQuote(m)
		if err != nil {
			continue // refused earlier, also fine
		}
		if err := checkQuoteSignatures(q); err == nil {
			t.Errorf("flipped byte in %s accepted", name)
		}
	}
}
