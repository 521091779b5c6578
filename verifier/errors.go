package verifier

import (
	"errors"
	"fmt"
)

// Error classes. Every verification failure wraps exactly one class, so that callers (and the CLI's
// exit codes) can branch with errors.Is:
//
//   - ErrRefused: the evidence was examined and does not satisfy the policy or is forged (exit 2);
//   - ErrUnavailable: the verdict could not be reached: network, collateral missing (exit 3).
var (
	ErrRefused     = errors.New("refused")
	ErrUnavailable = errors.New("cannot verify")
)

// Reasons. Each wraps one class above; a *FactorError carries one reason.
var (
	// ErrEvidenceMalformed: the evidence, quote or report cannot be parsed.
	ErrEvidenceMalformed = reason("malformed evidence", ErrRefused)
	// ErrCOSESignature: the evidence document is not signed by the server's TLS key.
	ErrCOSESignature = reason("evidence not signed by the TLS key", ErrRefused)
	// ErrUntrustedRoot: the quote's certificate chain does not lead to a trusted root.
	ErrUntrustedRoot = reason("quote chain does not lead to a trusted root", ErrRefused)
	// ErrQuoteSignature: the quote or report signature (or the QE report binding) is invalid.
	ErrQuoteSignature = reason("quote signature invalid", ErrRefused)
	// ErrCollateralInvalid: collateral (TCB info, QE identity, CRL) is badly signed or inconsistent.
	ErrCollateralInvalid = reason("collateral invalid", ErrRefused)
	// ErrCollateralExpired: collateral or a certificate is past its nextUpdate / notAfter.
	ErrCollateralExpired = reason("collateral expired", ErrRefused)
	// ErrCollateralNotYetValid: collateral was issued after the verification time.
	ErrCollateralNotYetValid = reason("collateral issued after the verification time", ErrRefused)
	// ErrCollateralTooOld: collateral is older than the policy allows (age or evaluation number).
	ErrCollateralTooOld = reason("collateral older than the policy allows", ErrRefused)
	// ErrCollateralUnavailable: collateral could not be obtained (network or not recorded).
	ErrCollateralUnavailable = reason("collateral unavailable", ErrUnavailable)
	// ErrNetwork: the server could not be reached or answered with an HTTP error.
	ErrNetwork = reason("network error", ErrUnavailable)
	// ErrRevoked: a certificate in the chain, or the TCB level, is revoked.
	ErrRevoked = reason("revoked", ErrRefused)
	// ErrTCBNotSupported: no TCB level of the collateral matches the platform.
	ErrTCBNotSupported = reason("TCB level not supported", ErrRefused)
	// ErrTCBStatus: the converged TCB status is not accepted by the policy.
	ErrTCBStatus = reason("TCB status not accepted", ErrRefused)
	// ErrAdvisory: the TCB level carries an advisory the policy does not allow.
	ErrAdvisory = reason("security advisory not allowed", ErrRefused)
	// ErrTEENotAccepted: the policy does not accept this kind of TEE.
	ErrTEENotAccepted = reason("TEE kind not accepted", ErrRefused)
	// ErrDebug: the TD or guest runs in debug mode.
	ErrDebug = reason("debug mode", ErrRefused)
	// ErrAttributes: TD attributes or guest policy bits outside the policy.
	ErrAttributes = reason("attributes not accepted", ErrRefused)
	// ErrXFAM: XFAM outside the policy mask.
	ErrXFAM = reason("XFAM not accepted", ErrRefused)
	// ErrMeasurement: a measurement (MRTD, RTMR0-2, MRSEAM, SNP measurement...) is not allow-listed.
	ErrMeasurement = reason("measurement not in policy", ErrRefused)
	// ErrSVN: a security version number is below the policy minimum (TEE_TCB_SVN, SNP TCB).
	ErrSVN = reason("security version below policy", ErrRefused)
	// ErrVMPL: the SEV-SNP report comes from another VM privilege level than the policy requires.
	ErrVMPL = reason("VMPL not accepted", ErrRefused)
	// ErrBinding: REPORTDATA does not bind the TLS key and nonce (another key: man in the middle).
	ErrBinding = reason("quote not bound to this TLS key and nonce", ErrRefused)
	// ErrNonce: the evidence does not carry the nonce sent (replay) or carries none.
	ErrNonce = reason("nonce mismatch", ErrRefused)
	// ErrStale: evidence older than the policy's maxEvidenceAge.
	ErrStale = reason("evidence too old", ErrRefused)
	// ErrEventLog: the runtime event log does not replay to RTMR3, or is not bound when required.
	ErrEventLog = reason("event log does not match RTMR3", ErrRefused)
	// ErrRuntimeDigest: a runtime digest (model, binary, config) is not in the policy.
	ErrRuntimeDigest = reason("runtime digest not in policy", ErrRefused)
	// ErrUnattested: the server is unattested and the policy or caller did not opt in.
	ErrUnattested = reason("server is unattested", ErrRefused)
	// ErrPinned: a pinned connection presented another key than the verified one.
	ErrPinned = reason("server key differs from the verified key", ErrRefused)
	// ErrReceipt: a response receipt does not verify.
	ErrReceipt = reason("receipt invalid", ErrRefused)
)

type reasonError struct {
	msg   string
	class error
}

func reason(msg string, class error) error { return &reasonError{msg, class} }
func (e *reasonError) Error() string       { return e.msg }
func (e *reasonError) Unwrap() error       { return e.class }

// FactorError is a failed verification factor: which check, what was expected and found, the
// policy line the expectation came from, and a hint. errors.Is(err, ErrMeasurement) etc. work on it.
type FactorError struct {
	Factor   string // factor name, e.g. "tdx.mrtd"
	Reason   error  // one of the Err* reasons
	Expected string // what the policy or protocol expects ("" if not applicable)
	Actual   string // what the evidence shows
	Where    string // policy file:line, "" if the rule is built in
	Hint     string // what to do about it
	Err      error  // underlying library error, may be nil
}

func (e *FactorError) Error() string {
	s := e.Factor + ": " + e.Reason.Error()
	if e.Actual != "" || e.Expected != "" {
		s += fmt.Sprintf(" (got %s", orNone(e.Actual))
		if e.Expected != "" {
			s += ", want " + e.Expected
		}
		s += ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the reason and the underlying error.
func (e *FactorError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Reason, e.Err}
	}
	return []error{e.Reason}
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// Class returns ErrRefused, ErrUnavailable, or nil for err.
func Class(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRefused):
		return ErrRefused
	default:
		return ErrUnavailable
	}
}

// Hint returns the hint of the first FactorError in err, or "".
func Hint(err error) string {
	var fe *FactorError
	if errors.As(err, &fe) {
		return fe.Hint
	}
	return ""
}
