// Package testtee is a hermetic test TEE: an Intel-shaped test PKI, TDX
// quotes (v4) signed under it, and a fake Intel PCS serving matching
// collateral (TCB info, QE identity, CRLs). The real go-tdx-guest verify and
// validate code accepts these quotes when given this package's root
// (RootPool) and Getter, and rejects them against Intel's root.
//
// It is a normal (non-test) package so that other packages' tests and
// `tdxl-gateway --tee=simulated` can use it. Nothing it produces is
// trustworthy: its keys live in process memory (or derive from a seed), and
// a verifier must accept its root only when told so explicitly.
//
// This package does not import net/http (see attest's dependency check).
// SEV-SNP's counterpart is package attest/testtee/sevtest.
package testtee

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"sync"
	"time"

	"github.com/tdxl/tdxl/attest"
)

// Intel's TD quoting enclave constants, used in the QE report and identity.
var (
	intelQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}
	qeMRSigner      = [32]byte{0xdc, 0x9e, 0x2a, 0x7c, 0x6f, 0x94, 0x8f, 0x17, 0x47, 0x4e, 0x34, 0xa7, 0xfc, 0x43, 0xed, 0x03,
		0x0f, 0x7c, 0x15, 0x63, 0xf1, 0xba, 0xbd, 0xdf, 0x63, 0x40, 0xc8, 0x2e, 0x0e, 0x54, 0xa8, 0xc5}
)

const qeISVProdID = 2

// TD attribute and XFAM defaults of a production TD (as on Azure/GCP TDX).
var (
	defaultTDAttributes = []byte{0, 0, 0, 0x10, 0, 0, 0, 0} // SEPT_VE_DISABLE
	defaultXFAM         = []byte{0xe7, 0x02, 0x06, 0, 0, 0, 0, 0}
	defaultTEETCBSVN    = []byte{0x03, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
)

// TDXOptions configure a test TD. Byte-slice fields: nil means the default
// given, otherwise the stated length is required.
type TDXOptions struct {
	// Seed makes keys and serial numbers deterministic (any length); nil
	// draws a random seed. Signatures are randomised either way.
	Seed []byte
	// Now is the clock: certificates and collateral are issued relative to
	// Now() at construction, and Evidence.Time is Now() at issue. nil = time.Now.
	Now func() time.Time

	// MRTD (48 bytes). nil = SHA-384("tdxl/testtee mrtd").
	MRTD []byte
	// RTMR0..2 (48 bytes each). nil = SHA-384("tdxl/testtee rtmrN").
	// RTMR3 starts at zero and changes only through Extend.
	RTMR [3][]byte
	// MRSEAM (48 bytes). nil = SHA-384("tdxl/testtee mrseam").
	MRSEAM []byte
	// MRSIGNERSEAM (48 bytes); the TCB info's tdxModule.mrsigner follows it.
	// nil = 48 zero bytes (Intel's TDX module signer).
	MRSIGNERSEAM []byte
	// MRCONFIGID, MROWNER, MROWNERCONFIG (48 bytes each). nil = zeros.
	MRConfigID, MROwner, MROwnerConfig []byte
	// TDAttributes (8 bytes, little-endian). nil = SEPT_VE_DISABLE only.
	TDAttributes []byte
	// Debug sets TD_ATTRIBUTES bit 0 (DEBUG) on top of TDAttributes.
	Debug bool
	// XFAM (8 bytes). nil = e7 02 06 00 00 00 00 00.
	XFAM []byte
	// TEETCBSVN (16 bytes). nil = 03 01 02 00…; byte 1 > 0 makes the TCB
	// info carry a tdxModuleIdentities entry "TDX_<hex byte 1>".
	TEETCBSVN []byte

	// Platform identity in the PCK certificate. nil = defaults.
	FMSPC  []byte   // 6 bytes; nil = 00 80 6f 05 00 00 (lowercase hex in the TCB info)
	PCEID  []byte   // 2 bytes; nil = 00 00
	CPUSVN [16]byte // SGX TCB components; zero value = 4 4 2 2 2 1 0 3 0 0 0 0 0 0 0 0
	PCESVN uint16   // 0 = 11
	QESVN  uint16   // QE ISVSVN; 0 = 4

	// TCBStatus is the platform TCB level's status in the TCB info.
	// "" = UpToDate. See ValidTCBStatus.
	TCBStatus string
	// ModuleTCBStatus is the TDX module identity level's status (used when
	// TEETCBSVN[1] > 0). "" = TCBStatus.
	ModuleTCBStatus string
	// QETCBStatus is the QE identity level's status. "" = UpToDate.
	QETCBStatus string
	// AdvisoryIDs are attached to non-UpToDate levels (e.g. "INTEL-SA-00837").
	AdvisoryIDs []string
	// TCBEvaluationDataNumber of TCB info and QE identity. 0 = 17.
	TCBEvaluationDataNumber int
	// CollateralIssued is the issueDate of TCB info / QE identity and the
	// thisUpdate of the CRLs. Zero = Now() - 1h. Set it after the
	// verification time to produce collateral "issued in the future".
	CollateralIssued time.Time
	// CollateralNextUpdate is nextUpdate of all collateral. Zero =
	// CollateralIssued + 30 days. Set it before the verification time to
	// produce expired collateral.
	CollateralNextUpdate time.Time
	// PCKRevoked lists the PCK certificate in the PCK CRL.
	PCKRevoked bool
	// QuoteVersion is 4 (0 = 4) or 5 (a TDX 1.5 body, type 3, as TDX 1.5
	// hosts emit; TEE_TCB_SVN2 = TEETCBSVN, MRSERVICETD = zeros).
	QuoteVersion int
	// EmbedCollateral puts the PCS responses into every Evidence.Collateral,
	// for verifiers working offline.
	EmbedCollateral bool
}

// TDX is a simulated TD: it issues quotes over caller REPORTDATA with its
// current measurements, keeps RTMR3 (and RTMR2) extendable, and serves the
// matching collateral. Safe for concurrent use.
type TDX struct {
	opts                         TDXOptions
	root, inter, pck, tcbSigning *issued
	attKey                       *ecdsa.PrivateKey
	chainPEM                     []byte
	collIssued, collNext         time.Time
	getter                       *Getter

	mu    sync.Mutex
	rtmrs [4][48]byte
}

func label48(label string) []byte {
	h := sha512.Sum384([]byte("tdxl/testtee " + label))
	return h[:]
}

func orDefault(name string, b []byte, n int, def []byte) ([]byte, error) {
	if b == nil {
		return append([]byte(nil), def...), nil
	}
	if len(b) != n {
		return nil, fmt.Errorf("testtee: %s is %d bytes, want %d", name, len(b), n)
	}
	return append([]byte(nil), b...), nil
}

func (o *TDXOptions) normalize() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	type field struct {
		name string
		p    *[]byte
		n    int
		def  []byte
	}
	fields := []field{
		{"MRTD", &o.MRTD, 48, label48("mrtd")},
		{"RTMR0", &o.RTMR[0], 48, label48("rtmr0")},
		{"RTMR1", &o.RTMR[1], 48, label48("rtmr1")},
		{"RTMR2", &o.RTMR[2], 48, label48("rtmr2")},
		{"MRSEAM", &o.MRSEAM, 48, label48("mrseam")},
		{"MRSIGNERSEAM", &o.MRSIGNERSEAM, 48, make([]byte, 48)},
		{"MRConfigID", &o.MRConfigID, 48, make([]byte, 48)},
		{"MROwner", &o.MROwner, 48, make([]byte, 48)},
		{"MROwnerConfig", &o.MROwnerConfig, 48, make([]byte, 48)},
		{"TDAttributes", &o.TDAttributes, 8, defaultTDAttributes},
		{"XFAM", &o.XFAM, 8, defaultXFAM},
		{"TEETCBSVN", &o.TEETCBSVN, 16, defaultTEETCBSVN},
		{"FMSPC", &o.FMSPC, 6, []byte{0x00, 0x80, 0x6f, 0x05, 0x00, 0x00}},
		{"PCEID", &o.PCEID, 2, []byte{0, 0}},
	}
	for _, f := range fields {
		v, err := orDefault(f.name, *f.p, f.n, f.def)
		if err != nil {
			return err
		}
		*f.p = v
	}
	if o.Debug {
		o.TDAttributes[0] |= 0x01
	}
	if o.CPUSVN == [16]byte{} {
		o.CPUSVN = [16]byte{4, 4, 2, 2, 2, 1, 0, 3}
	}
	if o.PCESVN == 0 {
		o.PCESVN = 11
	}
	if o.QESVN == 0 {
		o.QESVN = 4
	}
	if o.TCBStatus == "" {
		o.TCBStatus = StatusUpToDate
	}
	if o.ModuleTCBStatus == "" {
		o.ModuleTCBStatus = o.TCBStatus
	}
	if o.QETCBStatus == "" {
		o.QETCBStatus = StatusUpToDate
	}
	for _, s := range []string{o.TCBStatus, o.ModuleTCBStatus, o.QETCBStatus} {
		if !ValidTCBStatus(s) {
			return fmt.Errorf("testtee: unknown TCB status %q", s)
		}
	}
	switch o.QuoteVersion {
	case 0:
		o.QuoteVersion = 4
	case 4, 5:
	default:
		return fmt.Errorf("testtee: quote version %d (want 4 or 5)", o.QuoteVersion)
	}
	if o.TCBEvaluationDataNumber == 0 {
		o.TCBEvaluationDataNumber = 17
	}
	o.AdvisoryIDs = append([]string(nil), o.AdvisoryIDs...)
	return nil
}

// NewTDX builds the test PKI, the attestation key and the collateral.
func NewTDX(opts TDXOptions) (*TDX, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	ks, err := newKeySource(opts.Seed)
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	t := &TDX{opts: opts}
	// Certificates start a day back so that small clock skews never matter;
	// the root and intermediate outlive any test, the PCK lasts 7 years like Intel's.
	nb := now.Add(-24 * time.Hour).Truncate(time.Second)
	if t.root, err = ks.mkCert(certSpec{cn: rootCN, ca: true, crlDP: []string{RootCRLURL},
		notAfter: nb.AddDate(25, 0, 0)}, nil, nb); err != nil {
		return nil, err
	}
	if t.inter, err = ks.mkCert(certSpec{cn: platformCN, ca: true, crlDP: []string{RootCRLURL},
		notAfter: nb.AddDate(20, 0, 0)}, t.root, nb); err != nil {
		return nil, err
	}
	if t.tcbSigning, err = ks.mkCert(certSpec{cn: tcbSigningCN, crlDP: []string{RootCRLURL},
		notAfter: nb.AddDate(7, 0, 0)}, t.root, nb); err != nil {
		return nil, err
	}
	ppid := ks.bytes("ppid", 0)
	sgx, err := sgxExtension(ppid[:16], opts.CPUSVN, opts.PCESVN, opts.PCEID, opts.FMSPC)
	if err != nil {
		return nil, fmt.Errorf("encoding SGX extension: %w", err)
	}
	ski := ks.bytes("pck-ski", 0)
	if t.pck, err = ks.mkCert(certSpec{cn: pckCN, crlDP: []string{PCKCRLURL("platform")}, ski: ski[:20],
		extra:    []pkix.Extension{{Id: oidSGXExtension, Value: sgx}},
		notAfter: nb.AddDate(7, 0, 0)}, t.inter, nb); err != nil {
		return nil, err
	}
	if t.attKey, err = ks.key("attestation-key"); err != nil {
		return nil, err
	}
	t.chainPEM = append(append(pemCert(t.pck.cert), pemCert(t.inter.cert)...), pemCert(t.root.cert)...)
	t.collIssued = opts.CollateralIssued
	if t.collIssued.IsZero() {
		t.collIssued = now.Add(-time.Hour)
	}
	t.collIssued = t.collIssued.Truncate(time.Second)
	t.collNext = opts.CollateralNextUpdate
	if t.collNext.IsZero() {
		t.collNext = t.collIssued.AddDate(0, 0, 30)
	}
	t.collNext = t.collNext.Truncate(time.Second)
	resp, err := t.buildCollateral()
	if err != nil {
		return nil, err
	}
	t.getter = NewGetter(resp)
	copy(t.rtmrs[0][:], opts.RTMR[0])
	copy(t.rtmrs[1][:], opts.RTMR[1])
	copy(t.rtmrs[2][:], opts.RTMR[2])
	return t, nil
}

// TEE reports attest.TEETDX: the simulated TD issues TDX evidence.
func (t *TDX) TEE() attest.TEE { return attest.TEETDX }

// Issuer returns t as an attest.Issuer.
func (t *TDX) Issuer() attest.Issuer { return t }

// Issue returns TDX evidence whose quote carries reportData and the current
// RTMRs; with EmbedCollateral it also carries the PCS responses.
func (t *TDX) Issue(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q, err := t.Quote(reportData)
	if err != nil {
		return nil, err
	}
	e := &attest.Evidence{Version: attest.Version, TEE: attest.TEETDX, Quote: q, Time: t.opts.Now().UTC()}
	if t.opts.EmbedCollateral {
		e.Collateral = t.getter.Collateral()
	}
	return e, nil
}

// Extend extends RTMR register (2 or 3, the ones Linux lets user space
// extend) with digest: RTMR = SHA-384(RTMR ‖ digest).
func (t *TDX) Extend(register int, digest [48]byte) error {
	if register != 2 && register != 3 {
		return fmt.Errorf("testtee: RTMR%d is not extendable (only 2 and 3)", register)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rtmrs[register] = attest.ExtendRTMR(t.rtmrs[register], digest)
	return nil
}

// Read returns the current value of RTMR register (0..3).
func (t *TDX) Read(register int) ([48]byte, error) {
	if register < 0 || register > 3 {
		return [48]byte{}, fmt.Errorf("testtee: no RTMR%d", register)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rtmrs[register], nil
}

// RootPEM returns the test root certificate in PEM form (what
// `--simulated-root FILE` writes and `tdxl verify --trust-root FILE` reads).
func (t *TDX) RootPEM() []byte { return pemCert(t.root.cert) }

// Root returns the test root certificate ("Intel SGX Root CA", test key).
func (t *TDX) Root() *x509.Certificate { return t.root.cert }

// RootPool returns a pool holding only the test root, for
// verify.Options.TrustedRoots.
func (t *TDX) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(t.root.cert)
	return p
}

// PCKCertificate returns the PCK leaf certificate embedded in every quote.
func (t *TDX) PCKCertificate() *x509.Certificate { return t.pck.cert }

// Getter returns the fake PCS (for verify.Options.Getter).
func (t *TDX) Getter() *Getter { return t.getter }

// Collateral returns the PCS responses as evidence collateral, sorted by URL.
func (t *TDX) Collateral() []attest.Collateral { return t.getter.Collateral() }

// CollateralValidity returns the issue time and next-update time of the
// collateral.
func (t *TDX) CollateralValidity() (issued, nextUpdate time.Time) { return t.collIssued, t.collNext }

// Options returns the effective options (defaults filled in).
func (t *TDX) Options() TDXOptions { return t.opts }
