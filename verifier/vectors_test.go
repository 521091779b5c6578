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

// vector rows: the 14 real-hardware items of testdata/vectors (copied from shared/vectors/attestation)
// run through the offline path at the README's time T with the policy the row implies.
type vectorCase struct {
	name   string // folder
	at     string // T
	policy string // YAML
	want   error  // nil = verified; else the reason (errors.Is)
}

const (
	tdxStrict     = "apiVersion: tdxl/v1\ntdx: {}\n"
	tdxNoCRL      = "apiVersion: tdxl/v1\ntdx: {tcb: {allowMissingCRLs: true}}\n"
	tdxOutOfDate  = "apiVersion: tdxl/v1\ntdx: {tcb: {allowMissingCRLs: true, acceptedStatuses: [UpToDate, OutOfDate]}}\n"
	tdxNoColl     = "apiVersion: tdxl/v1\ntdx: {tcb: {allowNoCollateral: true}}\n"
	tdxDebugOK    = "apiVersion: tdxl/v1\ntdx: {allowDebug: true}\n"
	tdxSeptVE     = "apiVersion: tdxl/v1\ntdx: {tcb: {allowNoCollateral: true}, tdAttributes: {value: \"0000001000000000\", mask: \"0000001000000000\"}}\n"
	snpDefault    = "apiVersion: tdxl/v1\nsevSnp: {}\n"
	snpVMPL0      = "apiVersion: tdxl/v1\nsevSnp: {vmpl: 0}\n"
	snpAllowDebug = "apiVersion: tdxl/v1\nsevSnp: {allowDebug: true}\n"
)

var vectorCases = []vectorCase{
	{"gotdx-tdx-quote4-spr-e4", "2023-07-01T01:00:00Z", tdxStrict, ErrTCBNotSupported},
	{"gotdx-tdx-quote5-tdx15", "2026-02-20T00:00:00Z", tdxStrict, nil},
	{"gotdx-tdx-quote4-gce-ccel", "2024-08-01T00:00:00Z", tdxStrict, ErrCollateralUnavailable},
	{"trustee-tdx-quote4-debug", "2023-07-01T01:00:00Z", tdxStrict, ErrDebug},
	{"trustee-tdx-quote5-tdx15", "2026-02-20T00:00:00Z", tdxStrict, ErrTCBNotSupported},
	{"trustee-tdx-quote6-outofdate-platform", "2025-11-01T00:00:00Z", tdxNoCRL, ErrTCBStatus},
	{"trustee-azure-tdx-quote4", "2023-11-01T00:00:00Z", tdxStrict, ErrCollateralUnavailable},
	{"dcapqvl-tdx-quote4", "2025-07-01T00:00:00Z", tdxStrict, nil},
	{"dcapqvl-tdx-quote5-tcb-not-supported", "2026-03-01T00:00:00Z", tdxStrict, ErrTCBNotSupported},
	{"dcapqvl-near-tdx-quote4-dstack", "2025-09-15T00:00:00Z", tdxStrict, nil},
	{"gosev-snp-report-milan-debug", "2022-10-01T00:00:00Z", snpDefault, ErrDebug},
	{"trustee-snp-report-milan-vcek", "2023-06-01T00:00:00Z", snpDefault, nil},
	{"trustee-snp-report-milan-vlek", "2025-06-01T00:00:00Z", snpDefault, nil},
	{"trustee-azure-snp-hcl-report", "2024-01-01T00:00:00Z", snpDefault, nil},
}

// extra rows proving each library gap and policy knob on the same real evidence.
var vectorVariants = []vectorCase{
	// Collateral issued after T must fail (go-tdx-guest checks only nextUpdate).
	{"dcapqvl-tdx-quote4", "2025-06-01T00:00:00Z", tdxStrict, ErrCollateralNotYetValid},
	// Collateral expired at the check's wall-clock date.
	{"dcapqvl-tdx-quote4", "2026-11-28T00:00:00Z", tdxStrict, ErrCollateralExpired},
	// Collateral older than the policy allows.
	{"dcapqvl-tdx-quote4", "2025-07-01T00:00:00Z", "apiVersion: tdxl/v1\ntdx: {tcb: {maxCollateralAge: 24h}}\n", ErrCollateralTooOld},
	{"dcapqvl-tdx-quote4", "2025-07-01T00:00:00Z", "apiVersion: tdxl/v1\ntdx: {tcb: {minTcbEvaluationDataNumber: 99}}\n", ErrCollateralTooOld},
	// OutOfDate platform accepted only when the policy says so.
	{"trustee-tdx-quote6-outofdate-platform", "2025-11-01T00:00:00Z", tdxOutOfDate, nil},
	// Missing CRLs refuse unless allowed.
	{"trustee-tdx-quote6-outofdate-platform", "2025-11-01T00:00:00Z", tdxStrict, ErrCollateralUnavailable},
	// Debug accepted only when allowed.
	{"trustee-tdx-quote4-debug", "2023-07-01T01:00:00Z", tdxDebugOK, nil},
	// Signature and chain only, when the policy accepts missing collateral.
	{"gotdx-tdx-quote4-gce-ccel", "2024-08-01T00:00:00Z", tdxNoColl, nil},
	// Azure TD has no SEPT_VE_DISABLE: a policy requiring it refuses.
	{"trustee-azure-tdx-quote4", "2023-11-01T00:00:00Z", tdxSeptVE, ErrAttributes},
	// Wrong MRSEAM allow-list.
	{"dcapqvl-tdx-quote4", "2025-07-01T00:00:00Z", "apiVersion: tdxl/v1\ntdx: {mrseam: [" + zeros48 + "]}\n", ErrMeasurement},
	// VLEK: expired after 2025-12-10; VMPL 0 required refuses VMPL 1.
	{"trustee-snp-report-milan-vlek", "2026-01-01T00:00:00Z", snpDefault, ErrCollateralExpired},
	{"trustee-snp-report-milan-vlek", "2025-06-01T00:00:00Z", snpVMPL0, ErrVMPL},
	{"gosev-snp-report-milan-debug", "2022-10-01T00:00:00Z", snpAllowDebug, nil},
	// TEE kind not in policy.
	{"trustee-snp-report-milan-vcek", "2023-06-01T00:00:00Z", tdxStrict, ErrTEENotAccepted},
	{"dcapqvl-tdx-quote4", "2025-07-01T00:00:00Z", snpDefault, ErrTEENotAccepted},
}

const zeros48 = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

func runVector(t *testing.T, c vectorCase) (*Report, error) {
	t.Helper()
	dir := filepath.Join("testdata/vectors", c.name)
	p, err := policy.Parse(c.name+".yaml", []byte(c.policy))
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, c.at)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Policy: p, Now: at, Getter: DirGetter(filepath.Join(dir, "collateral"))}
	if q, err := os.ReadFile(filepath.Join(dir, "quote.bin")); err == nil {
		return VerifyTDXQuote(context.Background(), q, o)
	}
	r, err := os.ReadFile(filepath.Join(dir, "report.bin"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := LoadSNPCertsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return VerifySNPReport(context.Background(), r, certs, o)
}

func TestVectors(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/vectors/*/vector.json")
	if len(dirs) != 14 || len(vectorCases) != 14 {
		t.Fatalf("want 14 vectors and 14 rows, have %d and %d", len(dirs), len(vectorCases))
	}
	for _, c := range append(append([]vectorCase{}, vectorCases...), vectorVariants...) {
		t.Run(c.name+"@"+c.at, func(t *testing.T) {
			rep, err := runVector(t, c)
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			if c.want == nil {
				if err != nil || rep.Verdict != VerdictVerified {
					t.Fatalf("want verified, got %s: %v", rep.Verdict, err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
			var fe *FactorError
			if !errors.As(err, &fe) || fe.Hint == "" {
				t.Errorf("no typed factor error with a hint: %#v", err)
			}
			wantVerdict := VerdictRefused
			if errors.Is(c.want, ErrUnavailable) {
				wantVerdict = VerdictUnverified
			}
			if rep.Verdict != wantVerdict {
				t.Errorf("verdict %s, want %s", rep.Verdict, wantVerdict)
			}
			t.Logf("%s: %v", rep.Verdict, err)
		})
	}
}

// The library gap: go-tdx-guest main reports the module's UpToDate for this platform; we converge.
func TestOutOfDatePlatformStatus(t *testing.T) {
	rep, _ := runVector(t, vectorCase{"trustee-tdx-quote6-outofdate-platform", "2025-11-01T00:00:00Z", tdxOutOfDate, nil})
	if rep.TCBStatus != policy.StatusOutOfDate {
		t.Fatalf("TCB status %q, want OutOfDate", rep.TCBStatus)
	}
	var seen bool
	for _, f := range rep.Factors {
		if f.Name == "tdx.tcb-status" {
			seen = f.Status == Advisory
		}
	}
	if !seen {
		t.Error("accepted OutOfDate must show as an advisory factor")
	}
}

// Where go-tdx-guest can agree (UpToDate, CRLs present), its own collateral path must accept too.
func TestLibraryCrossCheckRuns(t *testing.T) {
	for _, name := range []string{"dcapqvl-tdx-quote4", "gotdx-tdx-quote5-tdx15", "dcapqvl-near-tdx-quote4-dstack"} {
		var c vectorCase
		for _, v := range vectorCases {
			if v.name == name {
				c = v
			}
		}
		rep, err := runVector(t, c)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range rep.Factors {
			if f.Name == "tdx.library-check" && f.Status == Pass {
				found = true
			}
		}
		if !found || rep.Root != "Intel SGX Root CA (embedded)" || rep.TCBStatus != "UpToDate" {
			t.Errorf("%s: library check not passed or root/status wrong: %+v", name, rep)
		}
	}
}
