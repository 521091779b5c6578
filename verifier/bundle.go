package verifier

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway/envelope"
	"github.com/tdxl/tdxl/policy"
)

// BundleVersion is the bundle format version.
const BundleVersion = 1

// MaxBundleSize bounds the bundle files LoadBundle reads.
const MaxBundleSize = 16 << 20

// Bundle is everything one online verification used, so that it can be re-run offline at the
// recorded time (VerifyBundle): the server certificate, the signed evidence, the nonce, every
// collateral response, the policy, the time and the verdict. It is JSON (byte fields base64).
//
// Extra trust roots used are recorded (Roots) but never trusted from the file: the re-verifier
// passes its own roots.
type Bundle struct {
	Version         int                 `json:"version"`
	Target          string              `json:"target"`
	Time            time.Time           `json:"time"`
	Certificate     []byte              `json:"certificate"`      // DER leaf of the TLS server
	EvidenceMessage []byte              `json:"evidenceMessage"`  // COSE_Sign1 as served
	Nonce           []byte              `json:"nonce"`            // the nonce sent
	Collateral      []attest.Collateral `json:"collateral"`       // responses used, by URL
	PolicyName      string              `json:"policyName"`       // file it came from
	Policy          []byte              `json:"policy"`           // policy file bytes
	Roots           []string            `json:"roots,omitempty"`  // PEM of added roots (informative)
	Verdict         string              `json:"verdict"`          // verdict at recording time
	Error           string              `json:"error,omitempty"`  // error at recording time
	Report          *Report             `json:"report,omitempty"` // full report at recording time
}

func (b *Bundle) record(r *Report, coll map[string]response) {
	b.Verdict, b.Error, b.Report = r.Verdict, r.Error, r
	b.Collateral = b.Collateral[:0]
	for u, c := range coll {
		b.Collateral = append(b.Collateral, attest.Collateral{URL: u, Header: keep(c.header), Body: c.body})
	}
	sort.Slice(b.Collateral, func(i, j int) bool { return b.Collateral[i].URL < b.Collateral[j].URL })
}

func policySource(p *policy.Policy) ([]byte, error) {
	if len(p.Raw) == 0 {
		return nil, errors.New("policy has no source bytes")
	}
	return p.Raw, nil
}

// addedPEM returns the PEM of the roots added beyond the vendors'.
func (r *Roots) addedPEM() []string {
	var out []string
	for i, c := range r.tdxCerts {
		if i > 0 {
			out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
		}
	}
	return out
}

// Save writes the bundle to path atomically.
func (b *Bundle) Save(path string) error {
	data, err := json.MarshalIndent(b, "", " ")
	if err != nil {
		return fmt.Errorf("encoding bundle: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	return nil
}

// LoadBundle reads a bundle file.
func LoadBundle(path string) (*Bundle, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %w", err)
	}
	if st.Size() > MaxBundleSize {
		return nil, fmt.Errorf("%w: bundle %s is %d bytes, max %d", ErrEvidenceMalformed, path, st.Size(), MaxBundleSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %w", err)
	}
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: bundle %s: %v", ErrEvidenceMalformed, path, err)
	}
	if b.Version != BundleVersion {
		return nil, fmt.Errorf("%w: bundle version %d, this tdxl reads %d", ErrEvidenceMalformed, b.Version, BundleVersion)
	}
	return &b, nil
}

// BundleOptions configure VerifyBundle.
type BundleOptions struct {
	// Roots: nil = DefaultRoots(). Roots recorded in the bundle are NOT trusted automatically.
	Roots *Roots
	// Policy overrides the recorded policy (nil: use the recorded one).
	Policy *policy.Policy
	// Now overrides the recorded time (zero: the recorded time).
	Now time.Time
	// AllowUnattested as in OnlineOptions.
	AllowUnattested bool
}

// VerifyBundle re-runs a recorded verification offline: same evidence, same nonce and key, the
// recorded collateral only, at the recorded time (unless overridden), under the recorded policy.
func VerifyBundle(ctx context.Context, b *Bundle, o BundleOptions) (*Report, error) {
	p := o.Policy
	if p == nil {
		var err error
		if p, err = policy.Parse(b.PolicyName+" (from bundle)", b.Policy); err != nil {
			return nil, fmt.Errorf("policy recorded in the bundle: %w", err)
		}
	}
	if o.Roots == nil {
		o.Roots = DefaultRoots()
	}
	now := o.Now
	if now.IsZero() {
		now = b.Time
	}
	rep := &Report{Target: b.Target + " (bundle)", Time: now.UTC(), Policy: p.Where("")}
	e := &env{roots: o.Roots, now: now, pol: p, rec: newRecorder(rep, p), collateral: map[string]response{}}
	m := mapGetter{}
	for _, c := range b.Collateral {
		m[c.URL] = response{c.Header, c.Body}
	}
	e.getter = m
	cert, err := x509.ParseCertificate(b.Certificate)
	if err != nil {
		err = e.rec.fail(&FactorError{Factor: "bundle.certificate", Reason: ErrEvidenceMalformed, Err: err}, "")
		rep.finish(err)
		return rep, err
	}
	ev, err := envelope.OpenEvidence(b.EvidenceMessage, cert.PublicKey)
	if err != nil {
		err = e.rec.fail(&FactorError{Factor: "evidence.signature", Reason: ErrCOSESignature, Err: err, Hint: "the bundle was altered"}, "")
		rep.finish(err)
		return rep, err
	}
	e.rec.pass("evidence.signature", "", "COSE_Sign1 by the recorded TLS key", "", "")
	err = checkEvidence(ctx, e, ev, cert.RawSubjectPublicKeyInfo, b.Nonce, o.AllowUnattested)
	rep.finish(err)
	return rep, err
}
