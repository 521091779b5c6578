package policy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden .err files of testdata/bad")

// TestLintGoldenBad parses every testdata/bad file and compares the full error text with the
// golden .err file next to it (go test ./policy -update rewrites them).
func TestLintGoldenBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d bad files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error is not a *policy.Error: %T", err)
			}
			for _, p := range pe.Problems {
				if !strings.HasPrefix(p.String(), f) {
					t.Errorf("problem does not start with the file name: %s", p)
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("missing golden (run with -update): %v", rerr)
			}
			if got != string(want) {
				t.Errorf("error text differs\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestGoodFilesAndExamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*")
	examples, _ := filepath.Glob("../deploy/policies/*.yaml")
	if len(examples) < 4 {
		t.Fatalf("expected the 4 example policies in deploy/policies, found %d", len(examples))
	}
	for _, f := range append(files, examples...) {
		p, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		var buf bytes.Buffer
		if err := Explain(&buf, p); err != nil || !strings.Contains(buf.String(), "policy ") {
			t.Errorf("%s: explain: %v %q", f, err, buf.String())
		}
	}
}

func TestExamplesMeanWhatTheySay(t *testing.T) {
	strict, err := Load("../deploy/policies/tdx-strict.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strict.Accepts(TEETDX) || strict.Accepts(TEESEVSNP) || strict.AllowUnattested {
		t.Error("tdx-strict must accept tdx only")
	}
	if got := strict.TDXRules().TCB.Accepted(); len(got) != 1 || got[0] != StatusUpToDate {
		t.Errorf("tdx-strict statuses %v", got)
	}
	if strict.TDXRules().AllowDebug || len(strict.TDXRules().MRSEAM) != 3 || strict.TDXRules().TCB.MaxCollateralAge.D() != 7*24*time.Hour {
		t.Error("tdx-strict fields")
	}
	if strict.Line("tdx.mrtd") == 0 || !strings.HasSuffix(strict.Where("tdx.mrtd"), ":"+itoa(strict.Line("tdx.mrtd"))) {
		t.Errorf("line of tdx.mrtd not recorded: %v", strict.Where("tdx.mrtd"))
	}
	if w := Lint(strict); len(w) != 0 {
		t.Errorf("tdx-strict has lint warnings: %v", w)
	}
	sw, _ := Load("../deploy/policies/tdx-sw-hardening.yaml")
	if got := sw.TDXRules().TCB.Accepted(); len(got) != 2 || got[1] != StatusSWHardeningNeeded {
		t.Errorf("sw-hardening statuses %v", got)
	}
	snp, _ := Load("../deploy/policies/sev-snp.yaml")
	if !snp.Accepts(TEESEVSNP) || snp.SNPRules().VMPL == nil || *snp.SNPRules().VMPL != 0 || snp.Runtime.RTMRBound() {
		t.Error("sev-snp fields")
	}
	dev, _ := Load("../deploy/policies/unattested-dev.yaml")
	if !dev.AllowUnattested || dev.Accepts(TEETDX) {
		t.Error("unattested-dev fields")
	}
	if w := Lint(dev); len(w) == 0 || !strings.Contains(w[0].String(), "unattested") {
		t.Errorf("unattested-dev should warn: %v", w)
	}
}

func TestDefaultsAreSafe(t *testing.T) {
	p, err := Parse("m.yaml", []byte("apiVersion: tdxl/v1\ntdx: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.AllowUnattested || p.TDXRules().AllowDebug || !p.Runtime.RTMRBound() || !p.Freshness.NonceRequired() {
		t.Error("zero values must be the safe choice")
	}
	if p.TDXRules().TCB.AllowMissingCRLs || p.TDXRules().TCB.AllowNoCollateral {
		t.Error("collateral must be required by default")
	}
	if a := p.TDXRules().TCB.Accepted(); len(a) != 1 || a[0] != StatusUpToDate {
		t.Errorf("default statuses %v", a)
	}
	if p.Accepts(TEESEVSNP) {
		t.Error("sev-snp accepted without a section")
	}
}

func TestJSONAndDigestForms(t *testing.T) {
	p, err := Load("testdata/good/full.json")
	if err != nil {
		t.Fatal(err)
	}
	if p.TDX.MRTD[0].Value.String() != "f06dfda6dce1cf904d4e2bab1dc370634cf95cefa2ceb2de2eee127c9382698090d7a4a13e14c536ec6c9c3c8fa87077" {
		t.Errorf("upper-case hex not normalised: %s", p.TDX.MRTD[0].Value)
	}
	if p.Runtime.Models[0].Name != "m" || len(p.Runtime.Models[0].Digest) != 32 {
		t.Errorf("digest entry %+v", p.Runtime.Models[0])
	}
	if p.Freshness.MaxEvidenceAge.D() != 10*time.Minute || p.Freshness.NonceRequired() {
		t.Error("freshness")
	}
	q, err := Parse("s.yaml", []byte("apiVersion: tdxl/v1\nruntime:\n  models: [\"a/b@sha256:"+strings.Repeat("ab", 32)+"\"]\n"))
	if err != nil || q.Runtime.Models[0].Name != "a/b" {
		t.Fatalf("NAME@sha256:HEX form: %v %+v", err, q)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good/*", "testdata/bad/*.yaml", "../deploy/policies/*.yaml"} {
		files, _ := filepath.Glob(dir)
		for _, fn := range files {
			if b, err := os.ReadFile(fn); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// A parsed policy satisfies the length rules, and Lint/Explain never fail on it.
		if p.APIVersion != APIVersion {
			t.Fatalf("accepted apiVersion %q", p.APIVersion)
		}
		for _, m := range p.TDXRules().MRTD {
			if len(m.Value) != LenMR {
				t.Fatalf("accepted MRTD of %d bytes", len(m.Value))
			}
		}
		for _, d := range p.Runtime.Models {
			if len(d.Digest) != LenDigest {
				t.Fatalf("accepted digest of %d bytes", len(d.Digest))
			}
		}
		_ = Lint(p)
		if err := Explain(&bytes.Buffer{}, p); err != nil {
			t.Fatal(err)
		}
	})
}
