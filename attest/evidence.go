// Package attest defines the attestation evidence a tdxl gateway serves and
// the pieces shared by the gateway (which produces it) and the verifier (which
// checks it): the Evidence document and its wire format, the REPORTDATA
// binding of a TLS key and a nonce (ReportData), the runtime event log and its
// RTMR3 replay, and the Issuer interface implemented by the TEE providers in
// the subpackages (tdx, snp, none, simulated; see attest/provider).
//
// This package knows nothing of HTTP and uses only the standard library and
// the CBOR codec.
//
// # Wire format (version 1)
//
// Evidence is encoded as one CBOR map (RFC 8949) with text-string keys, in
// core deterministic encoding (keys sorted by length then bytes, shortest
// integer forms, definite lengths, no tags). Keys and value types:
//
//	"version"        uint          must be 1
//	"tee"            text          "tdx" | "sev-snp" | "none"
//	"quote"          bytes         TDX DCAP quote (v4/v5) or SEV-SNP attestation report; absent iff tee == "none"
//	"certs"          bytes         optional SEV-SNP certificate table (GHCB layout)
//	"nonce"          bytes         0..64 bytes; absent for cached, nonce-less evidence
//	"spki_sha256"    bytes         32 bytes: SHA-256 of the TLS key's SubjectPublicKeyInfo DER
//	"event_log"      [Event]       optional runtime events (see Event)
//	"rtmr_extended"  bool          true iff every event was extended into RTMR3
//	"rtmr_status"    text          optional human-readable reason when not extended
//	"gateway_version" text         optional
//	"time"           text          RFC 3339 (UTC, nanoseconds) time of issue
//	"collateral"     [Collateral]  optional cached PCS/KDS responses for offline verifiers
//	"unattested"     bool          true iff tee == "none"
//
// Event is a map {"index" uint, "register" uint, "type" text, "measurement"
// bytes(32), "digest" bytes(48), "description" text (optional)}; Collateral is
// a map {"url" text, "header" {text: [text]} (optional), "body" bytes}.
// Unknown keys, duplicate keys, indefinite lengths, tags, trailing bytes and
// any violation of the rules in (*Evidence).Check are rejected by Unmarshal.
//
// The REPORTDATA of the quote is ReportData(spki, nonce), and the quote's
// RTMR3 equals ReplayRTMR(EventLog) when RTMRExtended is true; the verifier
// checks both (this package only checks the document's shape).
package attest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Version is the evidence format version this package reads and writes.
const Version = 1

// MaxEvidenceSize bounds the encoded size Unmarshal accepts (collateral
// included).
const MaxEvidenceSize = 4 << 20

// MaxNonceLen is the largest nonce evidence may carry.
const MaxNonceLen = 64

// TEE names a kind of trusted execution environment.
type TEE string

// TEE kinds. The simulated test TEE issues TEETDX evidence under a test root.
const (
	TEETDX    TEE = "tdx"
	TEESEVSNP TEE = "sev-snp"
	// TEENone is the explicit unattested mode: no quote at all.
	TEENone TEE = "none"
)

// Valid reports whether t is a known TEE kind.
func (t TEE) Valid() bool { return t == TEETDX || t == TEESEVSNP || t == TEENone }

// Issuer produces evidence bound to caller-chosen REPORTDATA.
//
// Issue fills Version, TEE, Quote (and Certs, Collateral where the provider
// has them), Unattested and Time. The caller (the gateway) fills the binding
// fields Nonce and SPKISHA256 that reportData was computed from, and the
// runtime fields (EventLog, RTMRExtended, RTMRStatus, GatewayVersion); see
// IssueBound. Issue must honour ctx cancellation where the device allows it.
type Issuer interface {
	Issue(ctx context.Context, reportData [64]byte) (*Evidence, error)
	TEE() TEE
}

// Collateral is one cached collateral response (Intel PCS/PCCS or AMD KDS),
// keyed by the URL the verification library asks for, so an offline verifier
// can answer its getter from the evidence.
type Collateral struct {
	URL string `cbor:"url"`
	// Header holds the response headers the library reads (e.g.
	// "Tcb-Info-Issuer-Chain"), keys in canonical MIME form. May be empty.
	Header map[string][]string `cbor:"header,omitempty"`
	Body   []byte              `cbor:"body"`
}

// Evidence is the versioned attestation document served by the gateway as
// the payload of a COSE_Sign1 signed by its TLS key.
type Evidence struct {
	// Version is the format version, always Version (1).
	Version int `cbor:"version"`
	// TEE is the kind of TEE that produced Quote.
	TEE TEE `cbor:"tee"`
	// Quote is the raw TDX quote or SEV-SNP report; nil iff TEE == TEENone.
	Quote []byte `cbor:"quote,omitempty"`
	// Certs is the SEV-SNP certificate table (optional; only for sev-snp).
	Certs []byte `cbor:"certs,omitempty"`
	// Nonce is the verifier's nonce; nil for cached evidence.
	Nonce []byte `cbor:"nonce,omitempty"`
	// SPKISHA256 is SHA-256 of the TLS key's SubjectPublicKeyInfo DER.
	SPKISHA256 []byte `cbor:"spki_sha256"`
	// EventLog lists the runtime measurements, in extension order.
	EventLog []Event `cbor:"event_log,omitempty"`
	// RTMRExtended is true iff every event in EventLog was extended into
	// RTMR3. When false, the runtime claims are not bound by the quote.
	RTMRExtended bool `cbor:"rtmr_extended"`
	// RTMRStatus explains RTMRExtended (e.g. "kernel has no RTMR sysfs
	// interface"); informative only.
	RTMRStatus string `cbor:"rtmr_status,omitempty"`
	// GatewayVersion is the gateway's version string; informative only.
	GatewayVersion string `cbor:"gateway_version,omitempty"`
	// Time is when the quote was issued (UTC).
	Time time.Time `cbor:"time"`
	// Collateral holds cached verification collateral, sorted by URL, unique.
	Collateral []Collateral `cbor:"collateral,omitempty"`
	// Unattested is true iff TEE == TEENone: nothing in this document is
	// vouched for by hardware.
	Unattested bool `cbor:"unattested"`
}

// Errors returned by this package; test with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed version-1 evidence document.
	ErrMalformed = errors.New("attest: malformed evidence")
	// ErrUnsupportedVersion: the document's version is not Version.
	ErrUnsupportedVersion = errors.New("attest: unsupported evidence version")
	// ErrNoTEE: no TEE was detected and unattested mode was not asked for.
	ErrNoTEE = errors.New("attest: no TEE detected")
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	eo.TimeTag = cbor.EncTagNone
	eo.TagsMd = cbor.TagsForbidden
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		TimeTag:           cbor.DecTagIgnored,
		MaxNestedLevels:   8,
		MaxArrayElements:  4096,
		MaxMapPairs:       4096,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal checks e and encodes it in the version-1 wire format.
func Marshal(e *Evidence) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil evidence", ErrMalformed)
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	c := *e
	c.Time = c.Time.UTC()
	b, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding evidence: %w", err)
	}
	return b, nil
}

// Unmarshal decodes and checks one version-1 evidence document. Errors wrap
// ErrMalformed or ErrUnsupportedVersion.
func Unmarshal(b []byte) (*Evidence, error) {
	if len(b) > MaxEvidenceSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrMalformed, len(b), MaxEvidenceSize)
	}
	// Read the version alone first so an unknown version is reported as such
	// rather than as unknown fields.
	var v struct {
		Version int `cbor:"version"`
	}
	if err := cbor.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v.Version != Version {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrUnsupportedVersion, v.Version, Version)
	}
	var e Evidence
	if err := decMode.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Check validates the document's shape (not its cryptography). Errors wrap
// ErrMalformed or ErrUnsupportedVersion.
func (e *Evidence) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case e.Version != Version:
		return fmt.Errorf("%w: %d (this build reads %d)", ErrUnsupportedVersion, e.Version, Version)
	case !e.TEE.Valid():
		return bad("unknown tee %q", e.TEE)
	case e.Unattested != (e.TEE == TEENone):
		return bad("unattested=%v with tee %q", e.Unattested, e.TEE)
	case e.TEE == TEENone && (len(e.Quote) != 0 || len(e.Certs) != 0):
		return bad("tee none carries a quote")
	case e.TEE != TEENone && len(e.Quote) == 0:
		return bad("tee %q without a quote", e.TEE)
	case len(e.Certs) != 0 && e.TEE != TEESEVSNP:
		return bad("certificate table with tee %q", e.TEE)
	case len(e.Nonce) > MaxNonceLen:
		return bad("nonce is %d bytes, max %d", len(e.Nonce), MaxNonceLen)
	case len(e.SPKISHA256) != 32:
		return bad("spki_sha256 is %d bytes, want 32", len(e.SPKISHA256))
	case e.RTMRExtended && e.TEE != TEETDX:
		return bad("rtmr_extended with tee %q", e.TEE)
	case e.Time.IsZero():
		return bad("no time")
	case !utf8.ValidString(e.RTMRStatus) || len(e.RTMRStatus) > MaxDescriptionLen:
		return bad("bad rtmr_status")
	case !utf8.ValidString(e.GatewayVersion) || len(e.GatewayVersion) > 256:
		return bad("bad gateway_version")
	}
	if err := CheckEvents(e.EventLog); err != nil {
		return err
	}
	for i, c := range e.Collateral {
		if c.URL == "" || !utf8.ValidString(c.URL) {
			return bad("collateral %d: empty or invalid url", i)
		}
		if i > 0 && e.Collateral[i-1].URL >= c.URL {
			return bad("collateral %d: urls not sorted and unique", i)
		}
	}
	return nil
}

// SortCollateral sorts c by URL (the order Marshal requires).
func SortCollateral(c []Collateral) {
	sort.Slice(c, func(i, j int) bool { return c[i].URL < c[j].URL })
}

// IssueBound computes ReportData(spki, nonce), asks iss for evidence over it
// and fills the binding fields Nonce and SPKISHA256. The caller adds the
// runtime fields (EventLog, RTMRExtended, ...) before Marshal.
func IssueBound(ctx context.Context, iss Issuer, spki, nonce []byte) (*Evidence, error) {
	if len(nonce) > MaxNonceLen {
		return nil, fmt.Errorf("issuing evidence: nonce is %d bytes, max %d", len(nonce), MaxNonceLen)
	}
	rd := ReportData(spki, nonce)
	e, err := iss.Issue(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("issuing %s evidence: %w", iss.TEE(), err)
	}
	h := SPKISHA256(spki)
	e.SPKISHA256 = h[:]
	if len(nonce) > 0 {
		e.Nonce = append([]byte(nil), nonce...)
	}
	return e, nil
}
