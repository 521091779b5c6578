package attest

import (
	"crypto/sha256"
	"crypto/sha512"
)

// BindingDomain is the domain-separation prefix of ReportData. A quote whose
// REPORTDATA was computed for another purpose can never be mistaken for a
// tdxl binding, and a future incompatible binding gets a new domain string.
const BindingDomain = "tdxl/attest/v1"

// ReportData returns the 64 bytes a TEE quote must carry in REPORTDATA to
// bind it to a TLS key and a verifier's nonce:
//
//	REPORTDATA = SHA-512( "tdxl/attest/v1" ‖ SHA-256(spki) ‖ nonce )
//
// spki is the DER SubjectPublicKeyInfo of the gateway's TLS key
// (x509.Certificate.RawSubjectPublicKeyInfo); hashing the SPKI rather than
// the certificate means a re-issued certificate for the same key keeps the
// same binding. nonce is the verifier's nonce as raw bytes (empty for the
// cached, nonce-less evidence). The domain string and the SHA-256 have fixed
// lengths, so the concatenation is unambiguous without length prefixes.
//
// Gateway and verifier both call this one function; nothing else in the
// project derives REPORTDATA.
func ReportData(spki, nonce []byte) [64]byte {
	h := sha256.Sum256(spki)
	return ReportDataFromHash(h, nonce)
}

// ReportDataFromHash is ReportData for a caller that holds only SHA-256(spki),
// e.g. Evidence.SPKISHA256. ReportData(spki, n) == ReportDataFromHash(SHA-256(spki), n).
func ReportDataFromHash(spkiSHA256 [32]byte, nonce []byte) [64]byte {
	d := sha512.New()
	d.Write([]byte(BindingDomain))
	d.Write(spkiSHA256[:])
	d.Write(nonce)
	var out [64]byte
	d.Sum(out[:0])
	return out
}

// SPKISHA256 returns SHA-256 of a DER SubjectPublicKeyInfo, the value carried
// in Evidence.SPKISHA256.
func SPKISHA256(spki []byte) [32]byte { return sha256.Sum256(spki) }
