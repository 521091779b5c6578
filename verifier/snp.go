package verifier

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/tdxl/tdxl/policy"
)

// SNPCerts carries the endorsement key certificate of an SEV-SNP report: either a DER VCEK/VLEK or
// a GHCB certificate table (as the guest's extended report returns it). The AMD chain above it
// (ASK/ASVK, ARK) always comes from the trusted Roots, never from the evidence.
type SNPCerts struct {
	VCEK  []byte // DER, or nil
	VLEK  []byte // DER, or nil
	Table []byte // GHCB certificate table, or nil
}

// LoadSNPCertsDir reads vcek.der or vlek.der from dir (the vectors' layout).
func LoadSNPCertsDir(dir string) (SNPCerts, error) {
	var c SNPCerts
	c.VCEK, _ = os.ReadFile(filepath.Join(dir, "vcek.der"))
	c.VLEK, _ = os.ReadFile(filepath.Join(dir, "vlek.der"))
	if c.VCEK == nil && c.VLEK == nil {
		return c, fmt.Errorf("no vcek.der or vlek.der in %s", dir)
	}
	return c, nil
}

// VerifySNPReport verifies a raw SEV-SNP attestation report offline: the VCEK/VLEK chain to AMD's
// ARK (or added roots) at T, the report signature, and the policy's SEV-SNP rules.
func VerifySNPReport(ctx context.Context, report []byte, certs SNPCerts, o Options) (*Report, error) {
	rep := &Report{TEE: "sev-snp", Attested: true}
	e, err := o.env(rep)
	if err != nil {
		return nil, err
	}
	_, err = verifySNP(ctx, e, report, certs)
	rep.finish(err)
	return rep, err
}

func verifySNP(ctx context.Context, e *env, raw []byte, certs SNPCerts) (*spb.Report, error) {
	rec := e.rec
	rec.r.TEE = "sev-snp"
	if !e.pol.Accepts(policy.TEESEVSNP) {
		return nil, rec.fail(&FactorError{Factor: "tee", Reason: ErrTEENotAccepted, Actual: "sev-snp", Expected: strings.Join(e.pol.TEEs, "|"),
			Hint: "the policy has no sevSnp section and does not list sev-snp in tees"}, "tees")
	}
	if len(raw) > abi.ReportSize {
		raw = raw[:abi.ReportSize]
	}
	r, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, rec.fail(&FactorError{Factor: "snp.report", Reason: ErrEvidenceMalformed, Err: err}, "")
	}
	info, err := abi.ParseSignerInfo(r.GetSignerInfo())
	if err != nil {
		return nil, rec.fail(&FactorError{Factor: "snp.report", Reason: ErrEvidenceMalformed, Err: err}, "")
	}
	chain := &spb.CertificateChain{VcekCert: certs.VCEK, VlekCert: certs.VLEK}
	if len(certs.Table) > 0 {
		var t abi.CertTable
		if err := t.Unmarshal(certs.Table); err != nil {
			return nil, rec.fail(&FactorError{Factor: "snp.certs", Reason: ErrEvidenceMalformed, Err: err}, "")
		}
		p := t.Proto()
		chain.VcekCert, chain.VlekCert = p.GetVcekCert(), p.GetVlekCert()
	}
	rec.pass("snp.report", "", fmt.Sprintf("v%d, signed by %v", r.GetVersion(), info.SigningKey), "", "")
	ek := chain.VcekCert
	if info.SigningKey == abi.VlekReportSigner {
		ek = chain.VlekCert
	}
	cert, err := x509.ParseCertificate(ek)
	if err != nil {
		return nil, rec.fail(&FactorError{Factor: "snp.endorsement-key", Reason: ErrEvidenceMalformed, Err: fmt.Errorf("no %v certificate: %v", info.SigningKey, err),
			Hint: "pass the VCEK/VLEK certificate (--certs DIR) or evidence with a certificate table"}, "")
	}
	if e.now.Before(cert.NotBefore) || e.now.After(cert.NotAfter) {
		return nil, rec.fail(&FactorError{Factor: "snp.endorsement-key", Reason: ErrCollateralExpired,
			Actual:   fmt.Sprintf("%v valid %s .. %s", info.SigningKey, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339)),
			Expected: "valid at " + e.now.UTC().Format(time.RFC3339), Hint: "VLEK certificates live one year: the host must provision a new one"}, "")
	}
	att := &spb.Attestation{Report: r, CertificateChain: chain}
	if err := sevverify.SnpAttestationContext(ctx, att, &sevverify.Options{DisableCertFetching: true, TrustedRoots: e.roots.SNP, Now: e.now}); err != nil {
		reason, hint := ErrQuoteSignature, "the report was altered or not signed by this endorsement key"
		if strings.Contains(err.Error(), "trusted roots") || strings.Contains(err.Error(), "root of trust") {
			reason, hint = ErrUntrustedRoot, "the endorsement key does not chain to AMD's ARK (a test signer needs --trust-root)"
		}
		return nil, rec.fail(&FactorError{Factor: "snp.signature", Reason: reason, Err: err, Hint: hint}, "")
	}
	if err := checkEndorsementClaims(r, cert, info.SigningKey); err != nil {
		return nil, rec.fail(&FactorError{Factor: "snp.endorsement-key", Reason: ErrQuoteSignature, Err: err,
			Hint: "the endorsement certificate belongs to another chip or TCB than the report claims"}, "")
	}
	rec.r.Root = e.roots.describeSNPRoot(cert)
	rec.pass("snp.signature", "", "valid", "", fmt.Sprintf("%v chain to %s (go-sev-guest verify)", info.SigningKey, cert.Issuer.CommonName))
	checkSNPPolicy(e, r)
	return r, rec.err
}

// SNP guest policy bits.
const (
	snpPolicyMigrateMA = 1 << 18
	snpPolicyDebug     = 1 << 19
)

func checkSNPPolicy(e *env, r *spb.Report) {
	rec, rules := e.rec, e.pol.SNPRules()
	m := rec.r.Measurements
	m["measurement"], m["hostData"], m["guestPolicy"] = hexs(r.GetMeasurement()), hexs(r.GetHostData()), fmt.Sprintf("%#x", r.GetPolicy())
	m["vmpl"] = fmt.Sprint(r.GetVmpl())
	pol := r.GetPolicy()
	switch {
	case pol&snpPolicyDebug != 0 && !rules.AllowDebug:
		rec.fail(&FactorError{Factor: "snp.debug", Reason: ErrDebug, Actual: fmt.Sprintf("guest policy %#x has DEBUG (bit 19)", pol), Expected: "clear",
			Hint: "a debug guest's memory is readable by the host (sevSnp.allowDebug: true accepts it)"}, "sevSnp.allowDebug")
	case pol&snpPolicyDebug != 0:
		rec.advisory("snp.debug", "", "DEBUG set", "sevSnp.allowDebug", "accepted by policy")
	default:
		rec.pass("snp.debug", "clear", "clear", "sevSnp.allowDebug", "")
	}
	if pol&snpPolicyMigrateMA != 0 && !rules.AllowMigrateMA {
		rec.fail(&FactorError{Factor: "snp.migrate-ma", Reason: ErrAttributes, Actual: "migration agent allowed", Expected: "not allowed",
			Hint: "a migration agent can export the guest's memory"}, "sevSnp.allowMigrateMA")
	}
	allow(rec, "snp.measurement", "sevSnp.measurements", r.GetMeasurement(), rules.Measurements)
	allow(rec, "snp.host-data", "sevSnp.hostData", r.GetHostData(), rules.HostData)
	if rules.VMPL != nil {
		if int(r.GetVmpl()) == *rules.VMPL {
			rec.pass("snp.vmpl", fmt.Sprint(*rules.VMPL), fmt.Sprint(r.GetVmpl()), "sevSnp.vmpl", "")
		} else {
			rec.fail(&FactorError{Factor: "snp.vmpl", Reason: ErrVMPL, Actual: fmt.Sprint(r.GetVmpl()), Expected: fmt.Sprint(*rules.VMPL),
				Hint: "the report was requested at another VM privilege level (e.g. under a paravisor)"}, "sevSnp.vmpl")
		}
	}
	if min := rules.MinTCB; min != nil {
		p := kds.DecomposeTCBVersion(kds.TCBVersion(r.GetReportedTcb()))
		got := fmt.Sprintf("bl=%d tee=%d snp=%d ucode=%d", p.BlSpl, p.TeeSpl, p.SnpSpl, p.UcodeSpl)
		want := fmt.Sprintf("bl>=%d tee>=%d snp>=%d ucode>=%d", min.BootLoader, min.TEE, min.SNP, min.Microcode)
		if p.BlSpl >= min.BootLoader && p.TeeSpl >= min.TEE && p.SnpSpl >= min.SNP && p.UcodeSpl >= min.Microcode {
			rec.pass("snp.reported-tcb", want, got, "sevSnp.minTcb", "")
		} else {
			rec.fail(&FactorError{Factor: "snp.reported-tcb", Reason: ErrSVN, Actual: got, Expected: want, Hint: "update the host firmware"}, "sevSnp.minTcb")
		}
	}
}

// snpReportData returns REPORT_DATA.
func snpReportData(r *spb.Report) []byte { return r.GetReportData() }

// checkEndorsementClaims compares the VCEK's TCB (and chip ID unless masked) with the report's
// REPORTED_TCB and CHIP_ID, which go-sev-guest's verify leaves to validate. VLEKs carry no chip ID.
func checkEndorsementClaims(r *spb.Report, cert *x509.Certificate, key abi.ReportSigner) error {
	exts, err := kds.CertificateExtensions(cert, key)
	if err != nil {
		return fmt.Errorf("reading %v extensions: %w", key, err)
	}
	if uint64(exts.TCBVersion) != r.GetReportedTcb() {
		return fmt.Errorf("%v TCB %#x, report REPORTED_TCB %#x", key, uint64(exts.TCBVersion), r.GetReportedTcb())
	}
	if key == abi.VcekReportSigner && len(exts.HWID) > 0 && !allZero(r.GetChipId()) && !bytes.Equal(exts.HWID, r.GetChipId()) {
		return fmt.Errorf("VCEK hwID %x differs from CHIP_ID %x", exts.HWID, r.GetChipId())
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
