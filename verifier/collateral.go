package verifier

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	tdxtrust "github.com/google/go-tdx-guest/verify/trust"
)

// Getter fetches collateral by URL (Intel PCS URLs; a PCCS or cache getter rewrites or answers them).
// It is go-tdx-guest's trust.HTTPSGetter: Get(url) (headers, body, error); implement
// GetContext(ctx, url) too to honour cancellation.
type Getter = tdxtrust.HTTPSGetter

// tdxCollateral is what was fetched for one quote, raw and parsed.
type tdxCollateral struct {
	tcbInfoRaw     []byte // inner "tcbInfo" JSON, as signed
	tcbInfo        pcs.TdxTcbInfo
	tcbChain       []*x509.Certificate // signing, root
	qeIdentityRaw  []byte
	qeIdentity     pcs.QeIdentity
	qeChain        []*x509.Certificate
	pckCRL         *x509.RevocationList // nil if unavailable
	pckCRLChain    []*x509.Certificate
	rootCRL        *x509.RevocationList
	crlUnavailable error // why the CRLs are missing
	responses      map[string]response
}

type response struct {
	header map[string][]string
	body   []byte
}

// rootCRLURL is where Intel publishes the SGX root CA CRL (also in the root's CRL distribution point).
const rootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// fetchTDXCollateral gets TCB info and QE identity (required) and the CRLs (optional, reported).
func fetchTDXCollateral(ctx context.Context, g Getter, fmspc, ca string) (*tdxCollateral, error) {
	c := &tdxCollateral{responses: map[string]response{}}
	get := func(u string) (map[string][]string, []byte, error) {
		h, b, err := tdxtrust.GetWith(ctx, g, u)
		if err == nil {
			c.responses[u] = response{h, b}
		}
		return h, b, err
	}
	h, b, err := get(pcs.TcbInfoURL(fmspc))
	if err != nil {
		return nil, fmt.Errorf("fetching TCB info for FMSPC %s: %w", fmspc, err)
	}
	if c.tcbInfoRaw, err = innerJSON(b, "tcbInfo", &c.tcbInfo); err != nil {
		return nil, err
	}
	if c.tcbChain, err = headerChain(h, pcs.TcbInfoIssuerChainPhrase); err != nil {
		return nil, err
	}
	h, b, err = get(pcs.QeIdentityURL())
	if err != nil {
		return nil, fmt.Errorf("fetching QE identity: %w", err)
	}
	if c.qeIdentityRaw, err = innerJSON(b, "enclaveIdentity", &c.qeIdentity); err != nil {
		return nil, err
	}
	if c.qeChain, err = headerChain(h, pcs.SgxQeIdentityIssuerChainPhrase); err != nil {
		return nil, err
	}
	// CRLs: missing ones are reported, and the policy decides.
	h, b, err = get(pcs.PckCrlURL(ca))
	if err == nil {
		c.pckCRL, err = x509.ParseRevocationList(b)
		if err == nil {
			c.pckCRLChain, err = headerChain(h, pcs.SgxPckCrlIssuerChainPhrase)
		}
	}
	if err != nil {
		c.pckCRL, c.crlUnavailable = nil, fmt.Errorf("PCK CRL: %w", err)
		return c, nil
	}
	rootURL := rootCRLURL
	if len(c.qeChain) == 2 && len(c.qeChain[1].CRLDistributionPoints) > 0 {
		rootURL = c.qeChain[1].CRLDistributionPoints[0]
	}
	_, b, err = get(rootURL)
	if err == nil {
		c.rootCRL, err = x509.ParseRevocationList(b)
	}
	if err != nil {
		c.pckCRL, c.rootCRL, c.crlUnavailable = nil, nil, fmt.Errorf("root CA CRL: %w", err)
	}
	return c, nil
}

// innerJSON returns the raw bytes of field name in body (what Intel signs) and decodes body into v.
func innerJSON(body []byte, name string, v any) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %s response is not JSON: %v", ErrCollateralInvalid, name, err)
	}
	raw, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s missing from response", ErrCollateralInvalid, name)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %v", ErrCollateralInvalid, name, err)
	}
	return raw, nil
}

// headerChain reads a URL-escaped PEM chain (signing cert, then root) from a response header,
// case-insensitively.
func headerChain(h map[string][]string, name string) ([]*x509.Certificate, error) {
	var vals []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			vals = v
		}
	}
	if len(vals) != 1 {
		return nil, fmt.Errorf("%w: header %s missing", ErrCollateralInvalid, name)
	}
	s, err := url.QueryUnescape(vals[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header %s: %v", ErrCollateralInvalid, name, err)
	}
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: header %s: %v", ErrCollateralInvalid, name, err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		return nil, fmt.Errorf("%w: header %s holds %d certificates, want 2", ErrCollateralInvalid, name, len(certs))
	}
	return certs, nil
}

// checkSigned verifies that raw is signed (hex r||s) by chain[0], that chain[0] is named cn, is
// issued by chain[1], and that chain[1] is a trusted root at t.
func checkSigned(raw []byte, sigHex string, chain []*x509.Certificate, cn string, roots *x509.CertPool, t time.Time) error {
	signer := chain[0]
	if signer.Subject.CommonName != cn {
		return fmt.Errorf("%w: signer is %q, want %q", ErrCollateralInvalid, signer.Subject.CommonName, cn)
	}
	inter := x509.NewCertPool()
	if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: t,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			if t.Before(signer.NotBefore) {
				return fmt.Errorf("%w: %s certificate not valid before %s", ErrCollateralNotYetValid, cn, signer.NotBefore.Format(time.RFC3339))
			}
			return fmt.Errorf("%w: %s certificate: %v", ErrCollateralExpired, cn, err)
		}
		return fmt.Errorf("%w: %s certificate: %v", ErrUntrustedRoot, cn, err)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return fmt.Errorf("%w: signature is not hex", ErrCollateralInvalid)
	}
	der, err := abi.SignatureToDER(sig)
	if err != nil {
		return fmt.Errorf("%w: signature: %v", ErrCollateralInvalid, err)
	}
	if err := signer.CheckSignature(x509.ECDSAWithSHA256, raw, der); err != nil {
		return fmt.Errorf("%w: signature by %s does not verify", ErrCollateralInvalid, cn)
	}
	return nil
}

// checkWindow enforces issued <= t <= next and the policy's maximum age.
func checkWindow(what string, issued, next, t time.Time, maxAge time.Duration) error {
	switch {
	case t.Before(issued):
		return fmt.Errorf("%w: %s issued %s, after the verification time %s", ErrCollateralNotYetValid, what, issued.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	case t.After(next):
		return fmt.Errorf("%w: %s expired at %s (verification time %s)", ErrCollateralExpired, what, next.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	case maxAge > 0 && t.Sub(issued) > maxAge:
		return fmt.Errorf("%w: %s issued %s ago, policy allows %s", ErrCollateralTooOld, what, t.Sub(issued).Round(time.Minute), maxAge)
	}
	return nil
}

// checkCRL verifies a CRL's issuer signature and validity window at t.
func checkCRL(what string, crl *x509.RevocationList, issuer *x509.Certificate, t time.Time, maxAge time.Duration) error {
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%w: %s not signed by %s: %v", ErrCollateralInvalid, what, issuer.Subject.CommonName, err)
	}
	return checkWindow(what, crl.ThisUpdate, crl.NextUpdate, t, maxAge)
}

func revokedIn(crl *x509.RevocationList, c *x509.Certificate) bool {
	if crl == nil {
		return false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// mapGetter answers from recorded responses (for the library's cross-check and for bundles).
type mapGetter map[string]response

func (m mapGetter) Get(u string) (map[string][]string, []byte, error) {
	r, ok := m[u]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s not recorded", ErrCollateralUnavailable, u)
	}
	return r.header, r.body, nil
}
