package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/tdxl/tdxl/policy"
)

// Options configure an offline verification of raw evidence.
type Options struct {
	// Policy to apply. Required.
	Policy *policy.Policy
	// Roots are the trust anchors. Nil: DefaultRoots() (Intel and AMD only).
	Roots *Roots
	// Getter supplies TDX collateral. Nil: none (the policy decides whether that refuses).
	Getter Getter
	// Now is the verification time T. Zero: time.Now().
	Now time.Time
}

func (o Options) env(rep *Report) (*env, error) {
	if o.Policy == nil {
		return nil, errors.New("verifier: no policy")
	}
	if o.Roots == nil {
		o.Roots = DefaultRoots()
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	rep.Time = o.Now.UTC()
	rep.Policy = o.Policy.Where("")
	return &env{roots: o.Roots, getter: o.Getter, now: o.Now, pol: o.Policy, rec: newRecorder(rep, o.Policy), collateral: map[string]response{}}, nil
}

// VerifyTDXQuote verifies a raw TDX quote (v4 or v5) offline: chain, signature, collateral, TCB and
// the policy's TDX rules. It does not check REPORTDATA or runtime claims (there is no binding to
// check against); Verify and VerifyBundle do.
func VerifyTDXQuote(ctx context.Context, quote []byte, o Options) (*Report, error) {
	rep := &Report{TEE: "tdx", Attested: true}
	e, err := o.env(rep)
	if err != nil {
		return nil, err
	}
	err = verifyRawTDX(ctx, e, quote)
	rep.finish(err)
	return rep, err
}

func verifyRawTDX(ctx context.Context, e *env, quote []byte) error {
	if !e.pol.Accepts(policy.TEETDX) {
		return e.rec.fail(&FactorError{Factor: "tee", Reason: ErrTEENotAccepted, Actual: "tdx", Expected: strings.Join(e.pol.TEEs, "|"),
			Hint: "the policy has no tdx section and does not list tdx in tees"}, "tees")
	}
	q, err := parseTDXQuote(quote)
	if err != nil {
		return e.rec.fail(&FactorError{Factor: "tdx.quote", Reason: ErrEvidenceMalformed, Err: err}, "")
	}
	return verifyTDX(ctx, e, q)
}

// DirGetter serves TDX collateral from a folder in the layout of the project's attestation vectors:
// tcb_info.json + tcb_info_issuer_chain.pem, qe_identity.json + qe_identity_issuer_chain.pem,
// pck_crl.der + pck_crl_issuer_chain.pem, root_ca_crl.der. Missing files answer "not recorded".
func DirGetter(dir string) Getter { return dirGetter(dir) }

type dirGetter string

func (d dirGetter) Get(u string) (map[string][]string, []byte, error) {
	var body, chain, header string
	switch {
	case strings.HasPrefix(u, pcs.TdxBaseURL+"/tcb"):
		body, chain, header = "tcb_info.json", "tcb_info_issuer_chain.pem", pcs.TcbInfoIssuerChainPhrase
	case u == pcs.QeIdentityURL():
		body, chain, header = "qe_identity.json", "qe_identity_issuer_chain.pem", pcs.SgxQeIdentityIssuerChainPhrase
	case strings.HasPrefix(u, pcs.SgxBaseURL+"/pckcrl"):
		body, chain, header = "pck_crl.der", "pck_crl_issuer_chain.pem", pcs.SgxPckCrlIssuerChainPhrase
	case strings.HasSuffix(u, ".der") || strings.Contains(u, "rootcacrl"):
		body = "root_ca_crl.der"
	default:
		return nil, nil, fmt.Errorf("%w: no file for %s", ErrCollateralUnavailable, u)
	}
	b, err := os.ReadFile(filepath.Join(string(d), body))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s not recorded in %s", ErrCollateralUnavailable, body, string(d))
	}
	h := map[string][]string{}
	if chain != "" {
		c, err := os.ReadFile(filepath.Join(string(d), chain))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s not recorded in %s", ErrCollateralUnavailable, chain, string(d))
		}
		h[header] = []string{url.QueryEscape(string(c))}
	}
	return h, b, nil
}
