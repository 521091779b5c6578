package testtee

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/validate"
	"github.com/google/go-tdx-guest/verify"

	"github.com/tdxl/tdxl/attest"
)

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

func timeSet(t time.Time) *verify.TimeSet {
	return &verify.TimeSet{PckCertChain: t, TcbInfo: t, QeIdentity: t, PckCrl: t, RootCaCrl: t}
}

func newTD(t *testing.T, o TDXOptions) *TDX {
	t.Helper()
	if o.Seed == nil {
		o.Seed = []byte("tdx_test")
	}
	if o.Now == nil {
		o.Now = fixedClock
	}
	td, err := NewTDX(o)
	if err != nil {
		t.Fatal(err)
	}
	return td
}

func verifyOpts(td *TDX, at time.Time) *verify.Options {
	return &verify.Options{
		TrustedRoots:     td.RootPool(),
		Getter:           td.Getter(),
		GetCollateral:    true,
		CheckRevocations: true,
		Now:              timeSet(at),
	}
}

func TestLibraryConstants(t *testing.T) {
	checks := map[string][2]string{
		"tcb info url":     {TCBInfoURL("00806f050000"), pcs.TcbInfoURL("00806f050000")},
		"qe identity url":  {QEIdentityURL(), pcs.QeIdentityURL()},
		"pck crl url":      {PCKCRLURL("platform"), pcs.PckCrlURL("platform")},
		"tcb chain header": {HeaderTCBInfoIssuerChain, pcs.TcbInfoIssuerChainPhrase},
		"qe chain header":  {HeaderQEIdentityIssuerChain, pcs.SgxQeIdentityIssuerChainPhrase},
		"crl chain header": {HeaderPCKCRLIssuerChain, pcs.SgxPckCrlIssuerChainPhrase},
		"sgx oid":          {oidSGXExtension.String(), pcs.OidSgxExtension.String()},
		"fmspc oid":        {oidFMSPC.String(), pcs.OidFMSPC.String()},
		"pceid oid":        {oidPCEID.String(), pcs.OidPCEID.String()},
		"tcb oid":          {oidTCB.String(), pcs.OidTCB.String()},
		"ppid oid":         {oidPPID.String(), pcs.OidPPID.String()},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: ours %q, go-tdx-guest %q", name, c[0], c[1])
		}
	}
}

func TestPCKExtensionsParse(t *testing.T) {
	td := newTD(t, TDXOptions{})
	ext, err := pcs.PckCertificateExtensions(td.PCKCertificate())
	if err != nil {
		t.Fatal(err)
	}
	o := td.Options()
	if ext.FMSPC != "00806f050000" || ext.PCEID != "0000" || ext.TCB.PCESvn != o.PCESVN ||
		!bytes.Equal(ext.TCB.CPUSvnComponents, o.CPUSVN[:]) || !bytes.Equal(ext.TCB.CPUSvn, o.CPUSVN[:]) {
		t.Fatalf("PCK extensions = %+v", ext)
	}
}

// The real go-tdx-guest verify (collateral + CRLs) and validate accept the
// test TD's quote with the test root and fake PCS.
func TestRealVerifierAccepts(t *testing.T) {
	for _, svn := range [][]byte{nil, make([]byte, 16)} { // with and without a TDX module identity
		td := newTD(t, TDXOptions{TEETCBSVN: svn})
		var rd [64]byte
		copy(rd[:], "report data")
		raw, err := td.Quote(rd)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.RawTdxQuote(raw, verifyOpts(td, testNow)); err != nil {
			t.Fatalf("verify (TEETCBSVN %x): %v", svn, err)
		}
		o := td.Options()
		err = validate.RawTdxQuote(raw, &validate.Options{
			HeaderOptions: validate.HeaderOptions{QeVendorID: intelQEVendorID, MinimumQeSvn: o.QESVN, MinimumPceSvn: o.PCESVN},
			TdQuoteBodyOptions: validate.TdQuoteBodyOptions{
				MinimumTeeTcbSvn: o.TEETCBSVN, MrSeam: o.MRSEAM, TdAttributes: o.TDAttributes, Xfam: o.XFAM,
				MrTd: o.MRTD, Rtmrs: [][]byte{o.RTMR[0], o.RTMR[1], o.RTMR[2], make([]byte, 48)},
				ReportData: rd[:], EnableTdDebugCheck: true,
			},
		})
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
	}
}

func TestRealVerifierRejectsIntelRoot(t *testing.T) {
	td := newTD(t, TDXOptions{})
	raw, err := td.Quote([64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	// nil TrustedRoots = go-tdx-guest's embedded Intel SGX Root CA.
	opts := verifyOpts(td, testNow)
	opts.TrustedRoots = nil
	if err := verify.RawTdxQuote(raw, opts); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("verify with Intel's root: %v", err)
	}
	// Another test TD's root (same names, other keys) is rejected too.
	other := newTD(t, TDXOptions{Seed: []byte("other")})
	opts = verifyOpts(td, testNow)
	opts.TrustedRoots = other.RootPool()
	if err := verify.RawTdxQuote(raw, opts); err == nil {
		t.Fatal("verify accepted a quote under another root")
	}
}

func TestRealVerifierRejects(t *testing.T) {
	rd := [64]byte{1}
	cases := map[string]struct {
		opts   TDXOptions
		at     time.Time
		tamper func(q []byte)
		want   string
	}{
		"tampered report data":  {tamper: func(q []byte) { q[0x238] ^= 1 }, want: "unable to verify message digest"},
		"tampered mrtd":         {tamper: func(q []byte) { q[0x30+0x88] ^= 1 }, want: "unable to verify message digest"},
		"out of date":           {opts: TDXOptions{TCBStatus: StatusOutOfDate}, want: "OutOfDate"},
		"sw hardening":          {opts: TDXOptions{TCBStatus: StatusSWHardeningNeeded, AdvisoryIDs: []string{"INTEL-SA-00837"}}, want: "SWHardeningNeeded"},
		"config needed":         {opts: TDXOptions{TCBStatus: StatusConfigurationNeeded}, want: "ConfigurationNeeded"},
		"revoked tcb":           {opts: TDXOptions{TCBStatus: StatusRevoked}, want: "Revoked"},
		"module out of date":    {opts: TDXOptions{ModuleTCBStatus: StatusOutOfDate}, want: "OutOfDate"},
		"qe out of date":        {opts: TDXOptions{QETCBStatus: StatusOutOfDate}, want: "Enclave TCB"},
		"revoked pck":           {opts: TDXOptions{PCKRevoked: true}, want: "revoked"},
		"expired collateral":    {opts: TDXOptions{CollateralNextUpdate: testNow.Add(-time.Minute)}, want: "expired"},
		"verified after expiry": {at: testNow.AddDate(0, 0, 31), want: "expired"},
		"other fmspc (positive control)": {opts: TDXOptions{FMSPC: []byte{0, 0x90, 0xc0, 0x6f, 0, 0}},
			want: ""}, // accepted: FMSPC is consistent; kept as a positive control
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			td := newTD(t, tc.opts)
			raw, err := td.Quote(rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tamper != nil {
				tc.tamper(raw)
			}
			at := tc.at
			if at.IsZero() {
				at = testNow
			}
			err = verify.RawTdxQuote(raw, verifyOpts(td, at))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// go-tdx-guest does not check when collateral was issued (the verifier
// must); the knob still produces such collateral, visible in the getter.
func TestCollateralFromFuture(t *testing.T) {
	future := testNow.Add(48 * time.Hour)
	td := newTD(t, TDXOptions{CollateralIssued: future})
	issued, next := td.CollateralValidity()
	if !issued.Equal(future) || !next.Equal(future.AddDate(0, 0, 30)) {
		t.Fatalf("validity %v..%v", issued, next)
	}
	_, body, err := td.Getter().Get(PCKCRLURL("platform"))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil || !crl.ThisUpdate.Equal(future) {
		t.Fatalf("CRL thisUpdate %v, %v", crl.ThisUpdate, err)
	}
	_, body, _ = td.Getter().Get(TCBInfoURL("00806f050000"))
	if !bytes.Contains(body, []byte(`"issueDate":"`+future.Format(pcsTime)+`"`)) {
		t.Fatalf("TCB info issueDate not in the future: %s", body)
	}
}

func TestValidateRejectsDebugAndMRTD(t *testing.T) {
	td := newTD(t, TDXOptions{Debug: true, MRTD: bytes.Repeat([]byte{0xab}, 48)})
	raw, err := td.Quote([64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify.RawTdxQuote(raw, verifyOpts(td, testNow)); err != nil {
		t.Fatalf("a debug TD's quote is still genuine: %v", err)
	}
	err = validate.RawTdxQuote(raw, &validate.Options{TdQuoteBodyOptions: validate.TdQuoteBodyOptions{EnableTdDebugCheck: true}})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "debug") {
		t.Fatalf("validate debug: %v", err)
	}
	err = validate.RawTdxQuote(raw, &validate.Options{TdQuoteBodyOptions: validate.TdQuoteBodyOptions{MrTd: make([]byte, 48)}})
	if err == nil {
		t.Fatal("validate accepted a wrong MRTD")
	}
	q, _ := abi.QuoteToProto(raw)
	if got := q.(*pb.QuoteV4).GetTdQuoteBody().GetMrTd(); !bytes.Equal(got, bytes.Repeat([]byte{0xab}, 48)) {
		t.Fatalf("MRTD %x", got)
	}
}

func TestIssueAndRTMR3(t *testing.T) {
	td := newTD(t, TDXOptions{EmbedCollateral: true})
	m := sha512.Sum512_256([]byte("model"))
	ev := attest.NewEvent(0, attest.EventModel, m[:], "m")
	var d [48]byte
	copy(d[:], ev.Digest)
	if err := td.Extend(3, d); err != nil {
		t.Fatal(err)
	}
	if err := td.Extend(1, d); err == nil {
		t.Fatal("RTMR1 extended")
	}
	spki := []byte("spki")
	e, err := attest.IssueBound(context.Background(), td, spki, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	e.EventLog = []attest.Event{ev}
	e.RTMRExtended = true
	b, err := attest.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := attest.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.QuoteToProto(e2.Quote)
	if err != nil {
		t.Fatal(err)
	}
	body := q.(*pb.QuoteV4).GetTdQuoteBody()
	want := attest.ReplayRTMR(e2.EventLog)
	if !bytes.Equal(body.GetRtmrs()[3], want[:]) {
		t.Fatalf("RTMR3 %x, replay %x", body.GetRtmrs()[3], want)
	}
	rd := attest.ReportData(spki, []byte("0123456789abcdef"))
	if !bytes.Equal(body.GetReportData(), rd[:]) {
		t.Fatal("REPORTDATA is not the binding")
	}
	if len(e2.Collateral) != 4 || !e2.Time.Equal(testNow) {
		t.Fatalf("collateral %d entries, time %v", len(e2.Collateral), e2.Time)
	}
	// The embedded collateral alone verifies the quote (offline).
	g := NewGetter(nil)
	for _, c := range e2.Collateral {
		g.Set(c.URL, Response{Header: c.Header, Body: c.Body})
	}
	opts := verifyOpts(td, testNow)
	opts.Getter = g
	if err := verify.RawTdxQuote(e2.Quote, opts); err != nil {
		t.Fatalf("offline verify: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := td.Issue(ctx, [64]byte{}); err == nil {
		t.Fatal("Issue ignored a cancelled context")
	}
}

func TestDeterministicKeys(t *testing.T) {
	a, b := newTD(t, TDXOptions{Seed: []byte("s")}), newTD(t, TDXOptions{Seed: []byte("s")})
	if !bytes.Equal(a.Root().RawSubjectPublicKeyInfo, b.Root().RawSubjectPublicKeyInfo) ||
		a.PCKCertificate().SerialNumber.Cmp(b.PCKCertificate().SerialNumber) != 0 {
		t.Fatal("same seed, different keys")
	}
	// A quote from one verifies under the other's root: same keys, same names.
	raw, _ := a.Quote([64]byte{})
	if err := verify.RawTdxQuote(raw, verifyOpts(b, testNow)); err != nil {
		t.Fatalf("cross verify: %v", err)
	}
	c := newTD(t, TDXOptions{Seed: []byte("t")})
	if bytes.Equal(a.Root().RawSubjectPublicKeyInfo, c.Root().RawSubjectPublicKeyInfo) {
		t.Fatal("different seeds, same root key")
	}
}

func TestOptionErrors(t *testing.T) {
	for name, o := range map[string]TDXOptions{
		"short mrtd": {MRTD: []byte{1}},
		"long xfam":  {XFAM: make([]byte, 9)},
		"bad status": {TCBStatus: "Fine"},
		"bad rtmr":   {RTMR: [3][]byte{nil, make([]byte, 47)}},
	} {
		if _, err := NewTDX(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestQuoteV5(t *testing.T) {
	td := newTD(t, TDXOptions{QuoteVersion: 5})
	rd := [64]byte{5}
	raw, err := td.Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.QuoteToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	q5, ok := q.(*pb.QuoteV5)
	if !ok || q5.GetHeader().GetVersion() != 5 || q5.GetTdQuoteBodyDescriptor().GetTdQuoteBodyType() != 3 {
		t.Fatalf("not a v5 TDX 1.5 quote: %T", q)
	}
	if err := verify.RawTdxQuote(raw, verifyOpts(td, testNow)); err != nil {
		t.Fatalf("verify v5: %v", err)
	}
	body := q5.GetTdQuoteBodyDescriptor().GetTdQuoteBodyV5()
	if !bytes.Equal(body.GetMrTd(), td.Options().MRTD) || !bytes.Equal(body.GetReportData(), rd[:]) {
		t.Fatal("v5 body fields")
	}
	// go-tdx-guest's validate (main) does not accept v5 quotes at all: a
	// verifier must check v5 bodies itself.
	if err := validate.RawTdxQuote(raw, &validate.Options{}); err == nil {
		t.Log("go-tdx-guest validate now accepts v5 quotes")
	}
	raw[len(raw)-700] ^= 1 // inside the PCK chain or QE data: something breaks
	if err := verify.RawTdxQuote(raw, verifyOpts(td, testNow)); err == nil {
		t.Fatal("tampered v5 quote verified")
	}
	if _, err := NewTDX(TDXOptions{QuoteVersion: 3}); err == nil {
		t.Fatal("quote version 3 accepted")
	}
}

// Library gaps the verifier must close, reproduced with the knobs (these
// assertions document go-tdx-guest main's behaviour; if they start failing,
// the library changed and the verifier's own checks can be revisited).
func TestLibraryGapsReproducible(t *testing.T) {
	// 1. Platform OutOfDate but TDX module UpToDate: go-tdx-guest takes the
	//    module's status (TEE_TCB_SVN[1] > 0) and accepts; Intel's QVL
	//    combines them into OutOfDate.
	td := newTD(t, TDXOptions{TCBStatus: StatusOutOfDate, ModuleTCBStatus: StatusUpToDate})
	raw, _ := td.Quote([64]byte{})
	if err := verify.RawTdxQuote(raw, verifyOpts(td, testNow)); err != nil {
		t.Errorf("gap 1 closed upstream? verify = %v", err)
	}
	// 2. Collateral issued after the verification time: not checked.
	td = newTD(t, TDXOptions{CollateralIssued: testNow.Add(24 * time.Hour)})
	raw, _ = td.Quote([64]byte{})
	if err := verify.RawTdxQuote(raw, verifyOpts(td, testNow)); err != nil {
		t.Errorf("gap 2 closed upstream? verify = %v", err)
	}
}
