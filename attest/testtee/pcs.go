package testtee

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"sync"

	"github.com/tdxl/tdxl/attest"
)

// TCB statuses Intel PCS reports (and go-tdx-guest's pcs package accepts).
const (
	StatusUpToDate                          = "UpToDate"
	StatusSWHardeningNeeded                 = "SWHardeningNeeded"
	StatusConfigurationNeeded               = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	StatusRevoked                           = "Revoked"
)

// ValidTCBStatus reports whether s is a TCB status PCS can report.
func ValidTCBStatus(s string) bool {
	switch s {
	case StatusUpToDate, StatusSWHardeningNeeded, StatusConfigurationNeeded,
		StatusConfigurationAndSWHardeningNeeded, StatusOutOfDate,
		StatusOutOfDateConfigurationNeeded, StatusRevoked:
		return true
	}
	return false
}

// ErrNotFound is returned by Getter for a URL it has no response for.
var ErrNotFound = errors.New("testtee: no such collateral")

// Response is one canned PCS response.
type Response struct {
	Header map[string][]string
	Body   []byte
}

// Getter serves canned PCS responses by exact URL. It implements
// go-tdx-guest's trust.HTTPSGetter and trust.ContextHTTPSGetter (and the
// shape of go-sev-guest's getter is served by sevtest). It is safe for
// concurrent use; Set and Delete let a test change the "network".
type Getter struct {
	mu        sync.Mutex
	responses map[string]Response
	requests  []string
}

// NewGetter returns a getter serving responses (copied).
func NewGetter(responses map[string]Response) *Getter {
	g := &Getter{responses: map[string]Response{}}
	for u, r := range responses {
		g.responses[u] = r
	}
	return g
}

// Get returns the headers and body for url, or an error wrapping ErrNotFound.
func (g *Getter) Get(url string) (map[string][]string, []byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, url)
	r, ok := g.responses[url]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, url)
	}
	h := make(map[string][]string, len(r.Header))
	for k, v := range r.Header {
		h[k] = append([]string(nil), v...)
	}
	return h, append([]byte(nil), r.Body...), nil
}

// GetContext is Get honouring ctx cancellation.
func (g *Getter) GetContext(ctx context.Context, url string) (map[string][]string, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return g.Get(url)
}

// Set installs (or replaces) the response for url.
func (g *Getter) Set(url string, r Response) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.responses[url] = r
}

// Delete removes the response for url (later Gets fail with ErrNotFound).
func (g *Getter) Delete(url string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.responses, url)
}

// Requests returns the URLs asked for so far, in order.
func (g *Getter) Requests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

// Collateral returns every response as evidence collateral, sorted by URL.
func (g *Getter) Collateral() []attest.Collateral {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]attest.Collateral, 0, len(g.responses))
	for u, r := range g.responses {
		c := attest.Collateral{URL: u, Body: append([]byte(nil), r.Body...)}
		if len(r.Header) > 0 {
			c.Header = map[string][]string{}
			for k, v := range r.Header {
				c.Header[k] = append([]string(nil), v...)
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// JSON shapes of the PCS v4 TDX responses (field order as Intel emits them).
type (
	jComponent struct {
		SVN byte `json:"svn"`
	}
	jTCB struct {
		SGX    []jComponent `json:"sgxtcbcomponents,omitempty"`
		PCESVN *uint16      `json:"pcesvn,omitempty"`
		TDX    []jComponent `json:"tdxtcbcomponents,omitempty"`
		ISVSVN *uint32      `json:"isvsvn,omitempty"`
	}
	jLevel struct {
		TCB         jTCB     `json:"tcb"`
		TCBDate     string   `json:"tcbDate"`
		TCBStatus   string   `json:"tcbStatus"`
		AdvisoryIDs []string `json:"advisoryIDs,omitempty"`
	}
	jModule struct {
		MRSigner       string `json:"mrsigner"`
		Attributes     string `json:"attributes"`
		AttributesMask string `json:"attributesMask"`
	}
	jModuleIdentity struct {
		ID string `json:"id"`
		jModule
		TCBLevels []jLevel `json:"tcbLevels"`
	}
	jTCBInfo struct {
		ID                      string            `json:"id"`
		Version                 int               `json:"version"`
		IssueDate               string            `json:"issueDate"`
		NextUpdate              string            `json:"nextUpdate"`
		FMSPC                   string            `json:"fmspc"`
		PCEID                   string            `json:"pceId"`
		TCBType                 int               `json:"tcbType"`
		TCBEvaluationDataNumber int               `json:"tcbEvaluationDataNumber"`
		TDXModule               jModule           `json:"tdxModule"`
		TDXModuleIdentities     []jModuleIdentity `json:"tdxModuleIdentities,omitempty"`
		TCBLevels               []jLevel          `json:"tcbLevels"`
	}
	jQEIdentity struct {
		ID                      string   `json:"id"`
		Version                 int      `json:"version"`
		IssueDate               string   `json:"issueDate"`
		NextUpdate              string   `json:"nextUpdate"`
		TCBEvaluationDataNumber int      `json:"tcbEvaluationDataNumber"`
		MiscSelect              string   `json:"miscselect"`
		MiscSelectMask          string   `json:"miscselectMask"`
		Attributes              string   `json:"attributes"`
		AttributesMask          string   `json:"attributesMask"`
		MRSigner                string   `json:"mrsigner"`
		ISVProdID               uint16   `json:"isvprodid"`
		TCBLevels               []jLevel `json:"tcbLevels"`
	}
)

const pcsTime = "2006-01-02T15:04:05Z"

func components(svns []byte, delta byte) []jComponent {
	out := make([]jComponent, len(svns))
	for i, s := range svns {
		out[i] = jComponent{SVN: s + delta}
	}
	return out
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }

// levels returns the TCB levels (descending) for a platform whose SVNs are
// exactly mk(0): a single level with status when it is UpToDate, else an
// unreachable UpToDate level (mk(1): every SVN one higher) followed by the
// platform's level with status.
func levels(status string, advisories []string, date string, mk func(delta byte) jTCB) []jLevel {
	own := jLevel{TCB: mk(0), TCBDate: date, TCBStatus: status}
	if status == StatusUpToDate {
		return []jLevel{own}
	}
	own.AdvisoryIDs = advisories
	return []jLevel{{TCB: mk(1), TCBDate: date, TCBStatus: StatusUpToDate}, own}
}

// signedBody renders {"<name>":<inner>,"signature":"<hex r‖s over inner>"},
// the PCS response shape whose signature covers the inner JSON bytes.
func signedBody(name string, inner any, signer *issued) ([]byte, error) {
	raw, err := json.Marshal(inner)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", name, err)
	}
	sig, err := rawSignature(signer.key, raw)
	if err != nil {
		return nil, err
	}
	body := []byte(`{"` + name + `":`)
	body = append(body, raw...)
	body = append(body, `,"signature":"`+hex.EncodeToString(sig)+`"}`...)
	return body, nil
}

func issuerChain(signing, root *x509.Certificate) map[string][]string {
	return map[string][]string{"": {url.QueryEscape(string(pemCert(signing)) + string(pemCert(root)))}}
}

func withKey(h map[string][]string, key string) map[string][]string {
	return map[string][]string{key: h[""]}
}

// buildCollateral renders the four PCS responses for t's platform.
func (t *TDX) buildCollateral() (map[string]Response, error) {
	o := &t.opts
	issued, next := t.collIssued.UTC(), t.collNext.UTC()
	date := issued.Format(pcsTime)
	fmspcHex := hex.EncodeToString(o.FMSPC)
	teeSVN := o.TEETCBSVN
	moduleIDs := []jModuleIdentity(nil)
	if teeSVN[1] > 0 {
		moduleIDs = []jModuleIdentity{{
			ID:      "TDX_" + hex.EncodeToString(teeSVN[1:2]),
			jModule: t.moduleJSON(),
			TCBLevels: levels(o.ModuleTCBStatus, o.AdvisoryIDs, date, func(d byte) jTCB {
				return jTCB{ISVSVN: u32(uint32(teeSVN[0] + d))}
			}),
		}}
	}
	tcbInfo := jTCBInfo{
		ID: "TDX", Version: 3, IssueDate: date, NextUpdate: next.Format(pcsTime),
		FMSPC: fmspcHex, PCEID: hex.EncodeToString(o.PCEID), TCBType: 0,
		TCBEvaluationDataNumber: o.TCBEvaluationDataNumber,
		TDXModule:               t.moduleJSON(),
		TDXModuleIdentities:     moduleIDs,
		TCBLevels: levels(o.TCBStatus, o.AdvisoryIDs, date, func(d byte) jTCB {
			return jTCB{SGX: components(o.CPUSVN[:], d), PCESVN: u16(o.PCESVN + uint16(d)), TDX: components(teeSVN, d)}
		}),
	}
	tcbBody, err := signedBody("tcbInfo", tcbInfo, t.tcbSigning)
	if err != nil {
		return nil, err
	}
	qe := jQEIdentity{
		ID: "TD_QE", Version: 2, IssueDate: date, NextUpdate: next.Format(pcsTime),
		TCBEvaluationDataNumber: o.TCBEvaluationDataNumber,
		MiscSelect:              "00000000", MiscSelectMask: "FFFFFFFF",
		Attributes:     "11000000000000000000000000000000",
		AttributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
		MRSigner:       hex.EncodeToString(qeMRSigner[:]),
		ISVProdID:      qeISVProdID,
		TCBLevels: levels(o.QETCBStatus, nil, date, func(d byte) jTCB {
			return jTCB{ISVSVN: u32(uint32(o.QESVN) + uint32(d))}
		}),
	}
	qeBody, err := signedBody("enclaveIdentity", qe, t.tcbSigning)
	if err != nil {
		return nil, err
	}
	var revoked []x509.RevocationListEntry
	if o.PCKRevoked {
		revoked = append(revoked, x509.RevocationListEntry{SerialNumber: t.pck.cert.SerialNumber, RevocationTime: issued})
	}
	pckCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: issued, NextUpdate: next, RevokedCertificateEntries: revoked,
	}, t.inter.cert, t.inter.key)
	if err != nil {
		return nil, fmt.Errorf("creating PCK CRL: %w", err)
	}
	rootCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: issued, NextUpdate: next,
	}, t.root.cert, t.root.key)
	if err != nil {
		return nil, fmt.Errorf("creating root CRL: %w", err)
	}
	tcbChain := issuerChain(t.tcbSigning.cert, t.root.cert)
	return map[string]Response{
		TCBInfoURL(fmspcHex): {Header: withKey(tcbChain, HeaderTCBInfoIssuerChain), Body: tcbBody},
		QEIdentityURL():      {Header: withKey(tcbChain, HeaderQEIdentityIssuerChain), Body: qeBody},
		PCKCRLURL("platform"): {
			Header: withKey(issuerChain(t.inter.cert, t.root.cert), HeaderPCKCRLIssuerChain),
			Body:   pckCRL,
		},
		RootCRLURL: {Body: rootCRL},
	}, nil
}

func (t *TDX) moduleJSON() jModule {
	return jModule{
		MRSigner:       hex.EncodeToString(t.opts.MRSIGNERSEAM),
		Attributes:     "0000000000000000",
		AttributesMask: "FFFFFFFFFFFFFFFF",
	}
}
