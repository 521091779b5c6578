// Package receipt defines the signed receipt a tdxl gateway attaches to each
// successful image generation, so that a user can later prove which attested
// service produced an image from which request.
//
// It is a small pure package (no HTTP, no server code): the verifier/client
// imports it to check receipts.
//
// # Where receipts appear
//
// For each 200 response to POST /api/text2image (and POST
// /v1/images/generations), each 202 response to POST /api/text2image (an
// accepted async job: no images yet, response_id = the job id) and each 200
// response to GET /api/text2image/<id> (the job's status; its images once it
// is done, request_sha256 = SHA-256 of the GET's empty body) that passes
// through the gateway (an async generation thus has two receipts, chained by
// the job id):
//
//   - the response header "Tdxl-Receipt" holds the receipt, standard base64
//     (RFC 4648 §4, padded) of the COSE_Sign1 bytes;
//   - when the body is a JSON object, the same base64 string is appended as
//     an additive top-level field "receipt" (every other byte of the
//     backend's body is kept as it was).
//
// # Format (version 1)
//
// The receipt is a COSE_Sign1 in the profile of package gateway/envelope
// (content type "application/vnd.tdxl.receipt.v1+cbor", kid = SHA-256 of the
// TLS key's SPKI), signed by the same TLS key whose SPKI the gateway's
// attestation evidence binds. Its payload is one CBOR map with text keys in
// core deterministic encoding:
//
//	"version"          uint    1
//	"path"             text    request path, e.g. "/api/text2image"
//	"request_sha256"   bytes   SHA-256 of the request body bytes as received
//	"response_sha256"  bytes   SHA-256 of the backend's response body (before "receipt" was added)
//	"response_id"      text    the response's "id" field, when present
//	"images"           [Image] one per returned image, in response order
//	"model_sha256"     bytes   measurement of the served model (the "model" event of the evidence event log); absent if none
//	"evidence_sha256"  bytes   SHA-256 of the cached (nonce-less) evidence COSE_Sign1 served for this key at that time
//	"spki_sha256"      bytes   SHA-256 of the signing key's SubjectPublicKeyInfo DER
//	"time"             text    RFC 3339 (UTC, nanoseconds)
//
// Image is {"name" text, "sha256" bytes}: name is the image URL's path (e.g.
// "/images/<id>/0_0.png", or the grid's "/images/<id>/image_grid.png") or,
// for inline base64 images, "output[i]" / "data[i]" / "grid" (gridB64Json);
// sha256 is over the image file's bytes (the PNG as the backend serves it, or
// the decoded base64 bytes).
//
// To check a receipt: VerifyReceipt(receipt, pub) with the public key of the
// certificate whose evidence was verified, then compare ImageSHA256 of the
// image in hand and the request body digest.
package receipt

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/tdxl/tdxl/gateway/envelope"
)

// Version is the receipt format version this package reads and writes.
const Version = 1

// Header is the HTTP response header carrying the base64 receipt.
const Header = "Tdxl-Receipt"

// JSONField is the additive top-level JSON field carrying the base64 receipt.
const JSONField = "receipt"

// MaxImages bounds the number of images one receipt lists.
const MaxImages = 1024

// Image names one returned image and the SHA-256 of its bytes.
type Image struct {
	Name   string `cbor:"name"`
	SHA256 []byte `cbor:"sha256"`
}

// Receipt is the signed statement about one generation.
type Receipt struct {
	Version        int       `cbor:"version"`
	Path           string    `cbor:"path"`
	RequestSHA256  []byte    `cbor:"request_sha256"`
	ResponseSHA256 []byte    `cbor:"response_sha256"`
	ResponseID     string    `cbor:"response_id,omitempty"`
	Images         []Image   `cbor:"images"`
	ModelSHA256    []byte    `cbor:"model_sha256,omitempty"`
	EvidenceSHA256 []byte    `cbor:"evidence_sha256"`
	SPKISHA256     []byte    `cbor:"spki_sha256"`
	Time           time.Time `cbor:"time"`
}

// ErrMalformed: the payload is not a well-formed version-1 receipt.
var ErrMalformed = errors.New("receipt: malformed receipt")

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
		MaxNestedLevels:   6,
		MaxArrayElements:  MaxImages,
		MaxMapPairs:       64,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Check validates the receipt's shape. Errors wrap ErrMalformed.
func (r *Receipt) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case r.Version != Version:
		return bad("version %d, this build reads %d", r.Version, Version)
	case r.Path == "" || len(r.Path) > 1024 || !utf8.ValidString(r.Path):
		return bad("bad path")
	case len(r.RequestSHA256) != sha256.Size:
		return bad("request_sha256 is %d bytes", len(r.RequestSHA256))
	case len(r.ResponseSHA256) != sha256.Size:
		return bad("response_sha256 is %d bytes", len(r.ResponseSHA256))
	case len(r.ResponseID) > 256 || !utf8.ValidString(r.ResponseID):
		return bad("bad response_id")
	case len(r.Images) > MaxImages:
		return bad("%d images, max %d", len(r.Images), MaxImages)
	case r.ModelSHA256 != nil && len(r.ModelSHA256) != sha256.Size:
		return bad("model_sha256 is %d bytes", len(r.ModelSHA256))
	case len(r.EvidenceSHA256) != sha256.Size:
		return bad("evidence_sha256 is %d bytes", len(r.EvidenceSHA256))
	case len(r.SPKISHA256) != sha256.Size:
		return bad("spki_sha256 is %d bytes", len(r.SPKISHA256))
	case r.Time.IsZero():
		return bad("no time")
	}
	for i, im := range r.Images {
		if im.Name == "" || len(im.Name) > 1024 || !utf8.ValidString(im.Name) {
			return bad("image %d: bad name", i)
		}
		if len(im.SHA256) != sha256.Size {
			return bad("image %d: sha256 is %d bytes", i, len(im.SHA256))
		}
	}
	return nil
}

// Marshal checks r and encodes its payload.
func Marshal(r *Receipt) ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	c := *r
	c.Time = c.Time.UTC()
	if c.Images == nil {
		c.Images = []Image{}
	}
	b, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encoding receipt: %w", err)
	}
	return b, nil
}

// Unmarshal decodes and checks a receipt payload (strict: unknown or
// duplicate keys, tags, indefinite lengths and trailing bytes are errors).
func Unmarshal(b []byte) (*Receipt, error) {
	var r Receipt
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Sign marshals r and signs it with key as a COSE_Sign1.
func Sign(key crypto.Signer, r *Receipt) ([]byte, error) {
	payload, err := Marshal(r)
	if err != nil {
		return nil, err
	}
	return envelope.Sign(key, envelope.ContentTypeReceipt, payload)
}

// VerifyReceipt checks that receipt (raw COSE_Sign1 bytes, not base64) is
// signed by pub and well formed, and that its SPKISHA256 names pub. Errors
// wrap envelope.ErrMalformed, envelope.ErrWrongKey, envelope.ErrSignature,
// envelope.ErrUnsupportedKey or ErrMalformed.
func VerifyReceipt(receipt []byte, pub crypto.PublicKey) (*Receipt, error) {
	payload, err := envelope.Open(receipt, pub, envelope.ContentTypeReceipt)
	if err != nil {
		return nil, fmt.Errorf("verifying receipt: %w", err)
	}
	r, err := Unmarshal(payload)
	if err != nil {
		return nil, err
	}
	kid, _ := envelope.KeyID(pub)
	if string(kid) != string(r.SPKISHA256) {
		return nil, fmt.Errorf("verifying receipt: %w: receipt names key %x", envelope.ErrWrongKey, r.SPKISHA256)
	}
	return r, nil
}

// ImageSHA256 returns the digest recorded for the image named name, if any.
func (r *Receipt) ImageSHA256(name string) ([]byte, bool) {
	for _, im := range r.Images {
		if im.Name == name {
			return im.SHA256, true
		}
	}
	return nil, false
}

// HasImage reports whether the receipt lists an image with these bytes.
func (r *Receipt) HasImage(data []byte) bool {
	h := sha256.Sum256(data)
	for _, im := range r.Images {
		if string(im.SHA256) == string(h[:]) {
			return true
		}
	}
	return false
}
