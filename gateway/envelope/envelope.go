// Package envelope is the wire format the tdxl gateway signs with its TLS key:
// COSE_Sign1 messages (RFC 9052, via veraison/go-cose) carrying either an
// attestation evidence document (attest.Evidence) or a receipt (package
// gateway/receipt), and the X.509 extension that carries evidence inside a
// self-signed certificate.
//
// It is a small pure package (no HTTP, no server code) so that a client such
// as the tdxl verifier can import it without pulling the gateway in.
//
// # COSE_Sign1 profile
//
// Every message the gateway signs is a tagged COSE_Sign1 (CBOR tag 18) with
//
//	protected header:   1 (alg)          ES256 | ES384 | ES512 | EdDSA | PS256, chosen by the key (AlgorithmFor)
//	                    3 (content type) ContentTypeEvidence or ContentTypeReceipt
//	                    4 (kid)          SHA-256 of the signer's SubjectPublicKeyInfo DER (32 bytes)
//	unprotected header: empty
//	payload:            the CBOR document (attached, never detached)
//	external AAD:       empty
//
// A verifier derives the algorithm from the public key it already trusts (the
// TLS certificate's key), never from the message: a header naming another
// algorithm is refused. The kid lets a verifier fail early, with a clear
// error, when it holds the wrong key; it is covered by the signature.
package envelope

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/tdxl/tdxl/attest"
	"github.com/veraison/go-cose"
)

// Content types (COSE header 3) of the two documents the gateway signs.
const (
	ContentTypeEvidence = "application/vnd.tdxl.evidence.v1+cbor"
	ContentTypeReceipt  = "application/vnd.tdxl.receipt.v1+cbor"
)

// MediaType is the HTTP Content-Type of a COSE_Sign1 response body.
const MediaType = `application/cose; cose-type="cose-sign1"`

// MaxMessageSize bounds the size of a message Open accepts: the largest
// evidence document plus generous room for headers and signature.
const MaxMessageSize = attest.MaxEvidenceSize + 64<<10

// EvidenceExtensionOID is the X.509 extension under which a self-signed
// gateway certificate carries the cached (nonce-less) evidence: the extension
// value is the OCTET STRING content = the COSE_Sign1 evidence message bytes,
// exactly as served by GET /.well-known/tdxl/attestation without a nonce.
// The extension is not critical.
//
// The OID is 2.25.434806152.1.1 (arc 2.25 of ITU-T X.667; the 31-bit random
// arc 434806152 is the project's, .1 = tdxl attestation, .1 = evidence v1).
// A full 128-bit UUID arc cannot be used: Go's encoding/asn1 (and hence
// crypto/x509 certificate parsing) only carries arcs that fit an int.
var EvidenceExtensionOID = asn1.ObjectIdentifier{2, 25, 434806152, 1, 1}

// Errors; test with errors.Is.
var (
	// ErrMalformed: the bytes are not a COSE_Sign1 of the expected shape
	// (bad CBOR, missing or wrong headers, oversized).
	ErrMalformed = errors.New("envelope: malformed message")
	// ErrWrongKey: the message names (kid) another key than the one given.
	ErrWrongKey = errors.New("envelope: signed by another key")
	// ErrSignature: the signature does not verify with the given key.
	ErrSignature = errors.New("envelope: bad signature")
	// ErrUnsupportedKey: the key type or curve has no COSE algorithm here.
	ErrUnsupportedKey = errors.New("envelope: unsupported key type")
	// ErrNoExtension: the certificate carries no evidence extension.
	ErrNoExtension = errors.New("envelope: certificate has no tdxl evidence extension")
)

// AlgorithmFor returns the COSE algorithm used with pub: ES256/384/512 for
// ECDSA P-256/384/521, EdDSA for Ed25519, PS256 for RSA (≥ 2048 bits).
func AlgorithmFor(pub crypto.PublicKey) (cose.Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return cose.AlgorithmES256, nil
		case elliptic.P384():
			return cose.AlgorithmES384, nil
		case elliptic.P521():
			return cose.AlgorithmES512, nil
		}
		return 0, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return cose.AlgorithmEdDSA, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return 0, fmt.Errorf("%w: RSA key of %d bits", ErrUnsupportedKey, k.N.BitLen())
		}
		return cose.AlgorithmPS256, nil
	}
	return 0, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// KeyID returns the kid of pub: SHA-256 of its SubjectPublicKeyInfo DER.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: marshaling public key: %v", ErrUnsupportedKey, err)
	}
	h := sha256.Sum256(spki)
	return h[:], nil
}

// Sign returns a tagged COSE_Sign1 over payload, signed by key, with the
// given content type (see the package comment for the header profile).
func Sign(key crypto.Signer, contentType string, payload []byte) ([]byte, error) {
	alg, err := AlgorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		return nil, fmt.Errorf("creating COSE signer: %w", err)
	}
	hdr := cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm:   alg,
		cose.HeaderLabelContentType: contentType,
		cose.HeaderLabelKeyID:       kid,
	}}
	msg, err := cose.Sign1(rand.Reader, signer, hdr, payload, nil)
	if err != nil {
		return nil, fmt.Errorf("signing COSE_Sign1: %w", err)
	}
	return msg, nil
}

// Open verifies that msg is a COSE_Sign1 with content type contentType,
// signed by pub, and returns its payload. Errors wrap ErrMalformed,
// ErrWrongKey, ErrSignature or ErrUnsupportedKey.
func Open(msg []byte, pub crypto.PublicKey, contentType string) ([]byte, error) {
	m, err := parse(msg, contentType)
	if err != nil {
		return nil, err
	}
	alg, err := AlgorithmFor(pub)
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	got, _ := m.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !bytes.Equal(got, kid) {
		return nil, fmt.Errorf("%w: kid %x, key %x", ErrWrongKey, got, kid)
	}
	if a, err := m.Headers.Protected.Algorithm(); err != nil || a != alg {
		return nil, fmt.Errorf("%w: algorithm %v does not match the key (%v)", ErrSignature, a, alg)
	}
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	if err := m.Verify(nil, v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return m.Payload, nil
}

// Payload returns the payload of a well-formed message WITHOUT verifying its
// signature: for display and fuzzing only. Errors wrap ErrMalformed.
func Payload(msg []byte, contentType string) ([]byte, error) {
	m, err := parse(msg, contentType)
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

func parse(msg []byte, contentType string) (*cose.Sign1Message, error) {
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrMalformed, len(msg), MaxMessageSize)
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(msg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.Payload == nil {
		return nil, fmt.Errorf("%w: detached payload", ErrMalformed)
	}
	ct, ok := m.Headers.Protected[cose.HeaderLabelContentType].(string)
	if !ok || ct != contentType {
		return nil, fmt.Errorf("%w: content type %v, want %q", ErrMalformed, m.Headers.Protected[cose.HeaderLabelContentType], contentType)
	}
	if _, ok := m.Headers.Protected[cose.HeaderLabelKeyID].([]byte); !ok {
		return nil, fmt.Errorf("%w: no kid", ErrMalformed)
	}
	return &m, nil
}

// SignEvidence marshals ev (attest.Marshal) and signs it with key.
func SignEvidence(key crypto.Signer, ev *attest.Evidence) ([]byte, error) {
	payload, err := attest.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("marshaling evidence: %w", err)
	}
	return Sign(key, ContentTypeEvidence, payload)
}

// OpenEvidence verifies msg with pub (Open) and decodes the evidence
// (attest.Unmarshal). It checks the COSE envelope and that the document's
// SPKISHA256 names pub; the quote itself is the verifier's business.
// Errors wrap the sentinels of this package or attest.ErrMalformed /
// attest.ErrUnsupportedVersion.
func OpenEvidence(msg []byte, pub crypto.PublicKey) (*attest.Evidence, error) {
	payload, err := Open(msg, pub, ContentTypeEvidence)
	if err != nil {
		return nil, err
	}
	ev, err := attest.Unmarshal(payload)
	if err != nil {
		return nil, fmt.Errorf("decoding evidence: %w", err)
	}
	kid, _ := KeyID(pub)
	if !bytes.Equal(ev.SPKISHA256, kid) {
		return nil, fmt.Errorf("%w: evidence names key %x, signed by %x", ErrWrongKey, ev.SPKISHA256, kid)
	}
	return ev, nil
}

// EvidenceFromCertificate returns the COSE_Sign1 evidence message embedded
// in cert under EvidenceExtensionOID (self-signed mode), unverified: pass it
// to OpenEvidence with cert.PublicKey. Errors wrap ErrNoExtension or
// ErrMalformed.
func EvidenceFromCertificate(cert *x509.Certificate) ([]byte, error) {
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(EvidenceExtensionOID) {
			if len(ext.Value) == 0 || len(ext.Value) > MaxMessageSize {
				return nil, fmt.Errorf("%w: evidence extension of %d bytes", ErrMalformed, len(ext.Value))
			}
			return ext.Value, nil
		}
	}
	return nil, ErrNoExtension
}
