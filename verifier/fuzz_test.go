package verifier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdxl/tdxl/policy"
)

// FuzzVerifyTDXQuote feeds arbitrary bytes (seeded with the real quotes) to the offline TDX path:
// it must never panic, and every failure must carry a class (refused / cannot verify) and a
// verdict that matches it.
func FuzzVerifyTDXQuote(f *testing.F) {
	files, _ := filepath.Glob("testdata/vectors/*/quote.bin")
	for _, fn := range files {
		if b, err := os.ReadFile(fn); err == nil {
			f.Add(b)
		}
	}
	pol, err := policy.Parse("fuzz.yaml", []byte("apiVersion: tdxl/v1\ntdx: {tcb: {allowMissingCRLs: true}}\n"))
	if err != nil {
		f.Fatal(err)
	}
	o := Options{Policy: pol, Roots: DefaultRoots(), Now: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), Getter: DirGetter("testdata/vectors/dcapqvl-tdx-quote4/collateral")}
	f.Fuzz(func(t *testing.T, quote []byte) {
		rep, err := VerifyTDXQuote(context.Background(), quote, o)
		if err == nil {
			if rep.Verdict != VerdictVerified {
				t.Fatalf("no error but verdict %s", rep.Verdict)
			}
			return
		}
		if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unclassified error: %v", err)
		}
		if rep.Verdict == VerdictVerified {
			t.Fatal("error with verdict verified")
		}
	})
}

// FuzzVerifySNPReport does the same for SEV-SNP reports.
func FuzzVerifySNPReport(f *testing.F) {
	files, _ := filepath.Glob("testdata/vectors/*/report.bin")
	for _, fn := range files {
		if b, err := os.ReadFile(fn); err == nil {
			f.Add(b)
		}
	}
	pol, err := policy.Parse("fuzz.yaml", []byte("apiVersion: tdxl/v1\nsevSnp: {}\n"))
	if err != nil {
		f.Fatal(err)
	}
	certs, err := LoadSNPCertsDir("testdata/vectors/trustee-snp-report-milan-vcek")
	if err != nil {
		f.Fatal(err)
	}
	o := Options{Policy: pol, Roots: DefaultRoots(), Now: time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, report []byte) {
		rep, err := VerifySNPReport(context.Background(), report, certs, o)
		if err != nil && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unclassified error: %v", err)
		}
		if (err == nil) != (rep.Verdict == VerdictVerified) {
			t.Fatalf("verdict %s with error %v", rep.Verdict, err)
		}
	})
}
