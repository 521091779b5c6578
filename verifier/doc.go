// Package verifier checks a tdxl pod before anything is sent to it, and then pins the connection.
//
// Online (a running gateway):
//
//	p, _ := policy.Load("deploy/policies/tdx-strict.yaml")
//	s, err := verifier.Connect(ctx, "https://pod:8443", p, verifier.OnlineOptions{})
//	// s.Report lists every factor (also on error); errors.Is(err, verifier.ErrMeasurement) etc.
//	client, err := s.Client()      // *http.Client pinned to the verified key
//	_ = s.Bundle.Save("pod.json")   // everything used, for VerifyBundle
//
// Connect dials once trusting no CA, fetches GET /.well-known/tdxl/attestation?nonce=<fresh>
// over that same connection, and checks in order: the COSE_Sign1 signature by the certificate's
// key, the nonce, the quote (PCK chain to the trusted roots at T, quote and QE signatures,
// collateral windows both ways and age, revocation, TCB status converged as Intel's QVL does,
// the policy's TDX or SEV-SNP rules), REPORTDATA == attest.ReportData(SPKI, nonce), the event-log
// replay into RTMR3, and the runtime digests. Verify is Connect returning only the report.
//
// Offline: VerifyTDXQuote and VerifySNPReport check raw evidence at a given time with collateral
// from a Getter (DirGetter reads the layout of the project's attestation vectors); VerifyBundle
// re-runs a saved online verification.
//
// Errors: every failure is a *FactorError whose Reason is one of the Err* reasons, each of which
// wraps a class: ErrRefused (forged, or not what the policy allows) or ErrUnavailable (network,
// collateral missing). Policy failures are never retried.
//
// Trust: DefaultRoots holds Intel's SGX root and AMD's ARKs (plus the Milan ASVK chain for VLEK
// reports). Roots.AddPEM adds others (a simulated TEE, a private PKI); reports then say "NOT
// Intel"/"NOT AMD". go-tdx-guest's verify package logs to stdout when given no roots, so this
// package always passes them.
package verifier
