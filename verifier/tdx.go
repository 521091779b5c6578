package verifier

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/tdxl/tdxl/policy"
)

// tdxBody is the TD quote body common to quote v4 and v5.
type tdxBody struct {
	teeTcbSvn, mrSeam, mrSignerSeam, seamAttributes, tdAttributes, xfam []byte
	mrTd, mrConfigID, mrOwner, mrOwnerConfig, reportData                []byte
	rtmrs                                                               [4][]byte
}

type tdxQuote struct {
	raw      []byte
	version  int
	proto    any // *pb.QuoteV4 or *pb.QuoteV5
	body     tdxBody
	chain    *verify.PCKCertificateChain
	exts     *pcs.PckExtensions
	qeReport *pb.EnclaveReport
	ca       string // "platform" or "processor"
	extra    int    // bytes after the signature data (zero padding, or appended text)
}

// quoteToProto is abi.QuoteToProto made safe for hostile input: go-tdx-guest's
// parser indexes slices by lengths read from the quote without checking them
// (a QE auth data size past the end of the buffer panics), so a forged quote
// must come back as a malformed-evidence error, never as a crash of the client.
func quoteToProto(raw []byte) (p any, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("go-tdx-guest parser failed on malformed quote: %v", r)
		}
	}()
	return abi.QuoteToProto(raw)
}

// parseTDXQuote parses a v4 or v5 quote, tolerating bytes after the signature data.
func parseTDXQuote(raw []byte) (*tdxQuote, error) {
	p, err := quoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing TDX quote: %v", ErrEvidenceMalformed, err)
	}
	q := &tdxQuote{raw: raw, proto: p}
	var sd *pb.Ecdsa256BitQuoteV4AuthData
	switch v := p.(type) {
	case *pb.QuoteV4:
		q.version = 4
		b := v.GetTdQuoteBody()
		q.body = tdxBody{b.GetTeeTcbSvn(), b.GetMrSeam(), b.GetMrSignerSeam(), b.GetSeamAttributes(), b.GetTdAttributes(), b.GetXfam(),
			b.GetMrTd(), b.GetMrConfigId(), b.GetMrOwner(), b.GetMrOwnerConfig(), b.GetReportData(), [4][]byte{}}
		copy(q.body.rtmrs[:], b.GetRtmrs())
		sd, q.extra = v.GetSignedData(), len(v.GetExtraBytes())
	case *pb.QuoteV5:
		q.version = 5
		b := v.GetTdQuoteBodyDescriptor().GetTdQuoteBodyV5()
		q.body = tdxBody{b.GetTeeTcbSvn(), b.GetMrSeam(), b.GetMrSignerSeam(), b.GetSeamAttributes(), b.GetTdAttributes(), b.GetXfam(),
			b.GetMrTd(), b.GetMrConfigId(), b.GetMrOwner(), b.GetMrOwnerConfig(), b.GetReportData(), [4][]byte{}}
		copy(q.body.rtmrs[:], b.GetRtmrs())
		sd, q.extra = v.GetSignedData(), len(v.GetExtraBytes())
	default:
		return nil, fmt.Errorf("%w: unsupported quote type %T", ErrEvidenceMalformed, p)
	}
	if len(q.body.teeTcbSvn) != 16 || len(q.body.tdAttributes) != 8 || len(q.body.xfam) != 8 || len(q.body.reportData) != 64 {
		return nil, fmt.Errorf("%w: TD quote body fields have wrong sizes", ErrEvidenceMalformed)
	}
	for i, r := range q.body.rtmrs {
		if len(r) != 48 {
			return nil, fmt.Errorf("%w: RTMR%d is %d bytes", ErrEvidenceMalformed, i, len(r))
		}
	}
	q.qeReport = sd.GetCertificationData().GetQeReportCertificationData().GetQeReport()
	if q.chain, err = verify.ExtractChainFromQuote(p); err != nil {
		return nil, fmt.Errorf("%w: PCK chain in quote: %v", ErrEvidenceMalformed, err)
	}
	if q.exts, err = pcs.PckCertificateExtensions(q.chain.PCKCertificate); err != nil {
		return nil, fmt.Errorf("%w: PCK certificate extensions: %v", ErrEvidenceMalformed, err)
	}
	switch q.chain.PCKCertificate.Issuer.CommonName {
	case "Intel SGX PCK Platform CA":
		q.ca = "platform"
	case "Intel SGX PCK Processor CA":
		q.ca = "processor"
	default:
		return nil, fmt.Errorf("%w: PCK issued by unknown CA %q", ErrEvidenceMalformed, q.chain.PCKCertificate.Issuer.CommonName)
	}
	return q, nil
}

// env is what one verification needs besides the evidence.
type env struct {
	roots  *Roots
	getter Getter // nil: no collateral source
	now    time.Time
	pol    *policy.Policy
	rec    *recorder
	// collateral records every response used, for bundles.
	collateral map[string]response
}

func timeSet(t time.Time) *verify.TimeSet {
	return &verify.TimeSet{PckCertChain: t, TcbInfo: t, QeIdentity: t, PckCrl: t, RootCaCrl: t}
}

// verifyTDX runs every TDX factor and returns the first failure in the order: chain, signature,
// collateral, TCB, policy. Crypto failures stop the run.
func verifyTDX(ctx context.Context, e *env, q *tdxQuote) error {
	rec, t, rules := e.rec, e.now, e.pol.TDXRules()
	rec.r.TEE = "tdx"
	rec.pass("tdx.quote", "", fmt.Sprintf("v%d, %d bytes", q.version, len(q.raw)), "", trailingNote(q.extra))
	// 1. PCK chain to a trusted root at T.
	inter := x509.NewCertPool()
	inter.AddCert(q.chain.IntermediateCertificate)
	chains, err := q.chain.PCKCertificate.Verify(x509.VerifyOptions{Roots: e.roots.TDX, Intermediates: inter, CurrentTime: t,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		fe := &FactorError{Factor: "tdx.pck-chain", Reason: ErrUntrustedRoot, Actual: q.chain.RootCertificate.Subject.CommonName,
			Expected: strings.Join(e.roots.Names, "; "), Err: err,
			Hint: "the quote is not signed under Intel's root; a simulated/test TEE needs --trust-root with its root certificate"}
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			fe.Reason, fe.Hint = ErrCollateralExpired, "a PCK certificate is outside its validity period at the verification time"
		}
		return rec.fail(fe, "")
	}
	root := chains[0][len(chains[0])-1]
	rec.r.Root = e.roots.describeTDXRoot(root)
	rec.pass("tdx.pck-chain", "", rec.r.Root, "", "FMSPC "+q.exts.FMSPC)
	// 2. Quote signature, QE report signature and QE report data: our own check, then go-tdx-guest's
	// (which knows only Platform-CA chains).
	if err := checkQuoteSignatures(q); err != nil {
		return rec.fail(&FactorError{Factor: "tdx.quote-signature", Reason: ErrQuoteSignature, Err: err,
			Hint: "the quote was altered or not produced by a TDX quoting enclave"}, "")
	}
	if q.ca == "platform" {
		if err := verify.TdxQuoteContext(ctx, q.proto, &verify.Options{TrustedRoots: e.roots.TDX, Now: timeSet(t)}); err != nil {
			return rec.fail(&FactorError{Factor: "tdx.quote-signature", Reason: ErrQuoteSignature, Err: err,
				Hint: "the quote was altered or not produced by a TDX quoting enclave"}, "")
		}
		rec.pass("tdx.quote-signature", "", "valid", "", "attestation key, QE report and PCK signatures (ours and go-tdx-guest verify)")
	} else {
		rec.pass("tdx.quote-signature", "", "valid", "", "attestation key, QE report and PCK signatures (ours; go-tdx-guest knows only Platform-CA chains)")
	}
	// 3-5. Collateral and TCB.
	if err := checkTDXCollateral(ctx, e, q, rules); err != nil && !errors.Is(err, errSkipTCB) {
		return err
	}
	// 6. Policy on the quote body.
	checkTDXPolicy(e, q, rules)
	return rec.err
}

var errSkipTCB = errors.New("collateral skipped by policy")

func trailingNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d bytes after the signature data ignored", n)
}

func checkTDXCollateral(ctx context.Context, e *env, q *tdxQuote, rules policy.TDX) error {
	rec, t := e.rec, e.now
	tcbRule := rules.TCB
	var c *tdxCollateral
	err := errors.New("no collateral source configured")
	if e.getter != nil {
		c, err = fetchTDXCollateral(ctx, e.getter, q.exts.FMSPC, q.ca)
	}
	if err != nil {
		if tcbRule.AllowNoCollateral {
			rec.skip("tdx.collateral", "tdx.tcb.allowNoCollateral", "no collateral ("+err.Error()+"): TCB status unknown, allowed by policy")
			return errSkipTCB
		}
		reason := ErrCollateralUnavailable
		if errors.Is(err, ErrCollateralInvalid) {
			reason = ErrCollateralInvalid
		}
		return rec.fail(&FactorError{Factor: "tdx.collateral", Reason: reason, Err: err, Actual: "FMSPC " + q.exts.FMSPC,
			Hint: "collateral comes from Intel PCS, a PCCS (--pccs / TDXL_PCCS_URL), a cache or an offline bundle"}, "tdx.tcb")
	}
	for u, r := range c.responses {
		if e.collateral != nil {
			e.collateral[u] = r
		}
	}
	info, qe := &c.tcbInfo.TcbInfo, &c.qeIdentity.EnclaveIdentity
	maxAge := tcbRule.MaxCollateralAge.D()
	ageRule := "tdx.tcb.maxCollateralAge"
	fail := func(factor string, err error, path string) error {
		reason := ErrCollateralInvalid
		for _, r := range []error{ErrCollateralExpired, ErrCollateralNotYetValid, ErrCollateralTooOld, ErrUntrustedRoot, ErrRevoked, ErrTCBNotSupported} {
			if errors.Is(err, r) {
				reason = r
			}
		}
		return rec.fail(&FactorError{Factor: factor, Reason: reason, Err: stripReason(err, reason), Hint: collateralHint(reason)}, path)
	}
	// TCB info.
	if err := checkSigned(c.tcbInfoRaw, c.tcbInfo.Signature, c.tcbChain, "Intel SGX TCB Signing", e.roots.TDX, t); err != nil {
		return fail("tdx.tcb-info", err, "")
	}
	if info.ID != "TDX" || info.Version != 3 {
		return fail("tdx.tcb-info", fmt.Errorf("%w: TCB info id %q version %d, want TDX 3", ErrCollateralInvalid, info.ID, info.Version), "")
	}
	if err := checkWindow("TCB info", info.IssueDate, info.NextUpdate, t, maxAge); err != nil {
		return fail("tdx.tcb-info", err, ageRule)
	}
	if n := tcbRule.MinTCBEvaluationDataNumber; n > 0 && info.TcbEvaluationDataNumber < n {
		return fail("tdx.tcb-info", fmt.Errorf("%w: tcbEvaluationDataNumber %d < %d", ErrCollateralTooOld, info.TcbEvaluationDataNumber, n), "tdx.tcb.minTcbEvaluationDataNumber")
	}
	rec.pass("tdx.tcb-info", "", fmt.Sprintf("FMSPC %s, issued %s, evaluation #%d", info.Fmspc, info.IssueDate.Format(time.RFC3339), info.TcbEvaluationDataNumber), ageRule, "")
	// QE identity.
	if err := checkSigned(c.qeIdentityRaw, c.qeIdentity.Signature, c.qeChain, "Intel SGX TCB Signing", e.roots.TDX, t); err != nil {
		return fail("tdx.qe-identity", err, "")
	}
	if qe.ID != "TD_QE" || qe.Version != 2 {
		return fail("tdx.qe-identity", fmt.Errorf("%w: QE identity id %q version %d, want TD_QE 2", ErrCollateralInvalid, qe.ID, qe.Version), "")
	}
	if err := checkWindow("QE identity", qe.IssueDate, qe.NextUpdate, t, maxAge); err != nil {
		return fail("tdx.qe-identity", err, ageRule)
	}
	if n := tcbRule.MinTCBEvaluationDataNumber; n > 0 && qe.TcbEvaluationDataNumber < n {
		return fail("tdx.qe-identity", fmt.Errorf("%w: tcbEvaluationDataNumber %d < %d", ErrCollateralTooOld, qe.TcbEvaluationDataNumber, n), "tdx.tcb.minTcbEvaluationDataNumber")
	}
	rec.pass("tdx.qe-identity", "", "issued "+qe.IssueDate.Format(time.RFC3339), ageRule, "")
	// Revocation.
	if c.pckCRL == nil {
		if !tcbRule.AllowMissingCRLs {
			return rec.fail(&FactorError{Factor: "tdx.revocation", Reason: ErrCollateralUnavailable, Err: c.crlUnavailable,
				Hint: "CRLs are required by the policy (tdx.tcb.allowMissingCRLs: true skips revocation when they are missing)"}, "tdx.tcb")
		}
		rec.skip("tdx.revocation", "tdx.tcb.allowMissingCRLs", "no CRLs ("+c.crlUnavailable.Error()+")")
	} else {
		if err := checkCRL("root CA CRL", c.rootCRL, q.chain.RootCertificate, t, maxAge); err != nil {
			return fail("tdx.revocation", err, ageRule)
		}
		if err := checkCRL("PCK CRL", c.pckCRL, q.chain.IntermediateCertificate, t, maxAge); err != nil {
			return fail("tdx.revocation", err, ageRule)
		}
		switch {
		case revokedIn(c.pckCRL, q.chain.PCKCertificate):
			return fail("tdx.revocation", fmt.Errorf("%w: PCK certificate serial %x is revoked", ErrRevoked, q.chain.PCKCertificate.SerialNumber), "")
		case revokedIn(c.rootCRL, q.chain.IntermediateCertificate):
			return fail("tdx.revocation", fmt.Errorf("%w: PCK CA certificate is revoked", ErrRevoked), "")
		case revokedIn(c.rootCRL, c.tcbChain[0]) || revokedIn(c.rootCRL, c.qeChain[0]):
			return fail("tdx.revocation", fmt.Errorf("%w: TCB signing certificate is revoked", ErrRevoked), "")
		}
		rec.pass("tdx.revocation", "", "not revoked", "", fmt.Sprintf("PCK CRL %s, root CRL %s", c.pckCRL.ThisUpdate.Format(time.RFC3339), c.rootCRL.ThisUpdate.Format(time.RFC3339)))
	}
	// TCB status, our evaluation.
	res, err := evaluateTCB(q, info, qe)
	if err != nil {
		return fail("tdx.tcb-status", err, "tdx.tcb.acceptedStatuses")
	}
	rec.r.TCBStatus, rec.r.Advisories = res.Converged, res.Advisories
	detail := fmt.Sprintf("platform %s (%s), TDX module %s, QE %s", res.Platform, res.PlatformDate, orDash(res.Module), res.QE)
	accepted := tcbRule.Accepted()
	switch {
	case res.Converged == policy.StatusRevoked:
		return rec.fail(&FactorError{Factor: "tdx.tcb-status", Reason: ErrRevoked, Actual: res.Converged + ": " + detail, Hint: "Intel revoked this TCB level"}, "")
	case !contains(accepted, res.Converged):
		return rec.fail(&FactorError{Factor: "tdx.tcb-status", Reason: ErrTCBStatus, Actual: res.Converged, Expected: strings.Join(accepted, "|"),
			Hint: detail + "; update the platform (BIOS/microcode/TDX module) or accept the status in tdx.tcb.acceptedStatuses"}, "tdx.tcb.acceptedStatuses")
	}
	if allowed := tcbRule.AllowedAdvisories; len(allowed) > 0 && res.Converged != policy.StatusUpToDate {
		for _, a := range res.Advisories {
			if !contains(allowed, a) {
				return rec.fail(&FactorError{Factor: "tdx.advisories", Reason: ErrAdvisory, Actual: a, Expected: strings.Join(allowed, "|"),
					Hint: "the TCB level carries an advisory the policy does not list"}, "tdx.tcb.allowedAdvisories")
			}
		}
	}
	if res.Converged == policy.StatusUpToDate {
		rec.pass("tdx.tcb-status", strings.Join(accepted, "|"), res.Converged, "tdx.tcb.acceptedStatuses", detail)
	} else {
		rec.advisory("tdx.tcb-status", strings.Join(accepted, "|"), res.Converged, "tdx.tcb.acceptedStatuses", detail+"; advisories "+strings.Join(res.Advisories, ","))
	}
	// Cross-check with go-tdx-guest's own collateral path where it can agree (it accepts only UpToDate).
	if q.ca == "platform" && res.Converged == policy.StatusUpToDate && res.QE == policy.StatusUpToDate && (res.Module == "" || res.Module == policy.StatusUpToDate) {
		opts := &verify.Options{GetCollateral: true, CheckRevocations: c.pckCRL != nil, Getter: mapGetter(c.responses), TrustedRoots: e.roots.TDX, Now: timeSet(t)}
		if err := verify.TdxQuoteContext(ctx, q.proto, opts); err != nil {
			return rec.fail(&FactorError{Factor: "tdx.library-check", Reason: ErrCollateralInvalid, Err: err}, "")
		}
		rec.pass("tdx.library-check", "", "accepted", "", "go-tdx-guest verify with the same collateral agrees")
	} else {
		rec.skip("tdx.library-check", "", "go-tdx-guest accepts UpToDate Platform-CA quotes only; our QVL-style evaluation decided")
	}
	return nil
}

func stripReason(err, reason error) error {
	// The reason is shown separately; keep the detail.
	msg := strings.TrimPrefix(err.Error(), reason.Error()+": ")
	return errors.New(msg)
}

func collateralHint(reason error) string {
	switch reason {
	case ErrCollateralExpired:
		return "fetch fresh collateral (Intel PCS/PCCS) or verify a bundle at its recorded time"
	case ErrCollateralNotYetValid:
		return "the collateral was issued after the verification time: use collateral from before that time"
	case ErrCollateralTooOld:
		return "the policy wants newer collateral (maxCollateralAge / minTcbEvaluationDataNumber): refresh it"
	case ErrUntrustedRoot:
		return "collateral is not signed under the trusted Intel root"
	case ErrRevoked:
		return "a certificate in the chain is revoked: this platform cannot be trusted"
	case ErrTCBNotSupported:
		return "Intel's collateral has no TCB level for this platform's firmware/microcode: update the platform"
	}
	return "the collateral is inconsistent with the quote or badly signed"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hexs(b []byte) string { return hex.EncodeToString(b) }
