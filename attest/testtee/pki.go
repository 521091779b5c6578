package testtee

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// The names, OIDs and URLs below are the ones go-tdx-guest's verifier
// requires (github.com/google/go-tdx-guest/verify and pcs). They are
// restated here rather than imported because the pcs package imports
// net/http, which attest/... must not link; pki_test.go checks that they
// match the library's values.
const (
	rootCN       = "Intel SGX Root CA"
	platformCN   = "Intel SGX PCK Platform CA"
	pckCN        = "Intel SGX PCK Certificate"
	tcbSigningCN = "Intel SGX TCB Signing"

	sgxBaseURL = "https://api.trustedservices.intel.com/sgx/certification/v4"
	tdxBaseURL = "https://api.trustedservices.intel.com/tdx/certification/v4"
	// RootCRLURL is the CRL distribution point of the (test) root, as in
	// Intel's real root certificate.
	RootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

	// Response header names, in Go's canonical MIME form (the form
	// go-tdx-guest looks up).
	HeaderTCBInfoIssuerChain    = "Tcb-Info-Issuer-Chain"
	HeaderQEIdentityIssuerChain = "Sgx-Enclave-Identity-Issuer-Chain"
	HeaderPCKCRLIssuerChain     = "Sgx-Pck-Crl-Issuer-Chain"
)

var (
	oidSGXExtension = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB          = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
)

// TCBInfoURL is the PCS URL of the TDX TCB info for an FMSPC (lowercase hex).
func TCBInfoURL(fmspcHex string) string { return tdxBaseURL + "/tcb?fmspc=" + fmspcHex }

// QEIdentityURL is the PCS URL of the TD quoting enclave identity.
func QEIdentityURL() string { return tdxBaseURL + "/qe/identity" }

// PCKCRLURL is the PCS URL of the PCK CRL of a CA ("platform" or "processor").
func PCKCRLURL(ca string) string { return sgxBaseURL + "/pckcrl?ca=" + ca + "&encoding=der" }

func intelName(cn string) pkix.Name {
	return pkix.Name{
		CommonName:   cn,
		Organization: []string{"Intel Corporation"},
		Locality:     []string{"Santa Clara"},
		Province:     []string{"CA"},
		Country:      []string{"US"},
	}
}

// keySource derives P-256 keys and serial numbers from a seed, so that a
// seeded test TEE has the same keys (and root public key) in every run. A
// nil seed draws a random one.
type keySource struct{ seed []byte }

func newKeySource(seed []byte) (*keySource, error) {
	if seed == nil {
		seed = make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("drawing seed: %w", err)
		}
	}
	return &keySource{seed: append([]byte(nil), seed...)}, nil
}

func (k *keySource) bytes(label string, ctr uint32) [32]byte {
	h := sha256.New()
	h.Write([]byte("tdxl/testtee/v1\x00"))
	h.Write(k.seed)
	h.Write([]byte{0})
	h.Write([]byte(label))
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], ctr)
	h.Write(c[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (k *keySource) key(label string) (*ecdsa.PrivateKey, error) {
	for ctr := uint32(0); ctr < 64; ctr++ {
		d := k.bytes(label, ctr)
		if key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:]); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("deriving key %q: no valid scalar", label)
}

func (k *keySource) serial(label string) *big.Int {
	b := k.bytes("serial/"+label, 0)
	b[0] &= 0x7f // positive, at most 20 octets
	return new(big.Int).SetBytes(b[:16])
}

type certSpec struct {
	cn       string
	ca       bool
	crlDP    []string
	ski      []byte
	extra    []pkix.Extension
	notAfter time.Time
}

type issued struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// mkCert creates a certificate for spec, signed by parent (self-signed when
// parent is nil), valid from notBefore.
func (k *keySource) mkCert(spec certSpec, parent *issued, notBefore time.Time) (*issued, error) {
	key, err := k.key("key/" + spec.cn)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          k.serial(spec.cn),
		Subject:               intelName(spec.cn),
		NotBefore:             notBefore,
		NotAfter:              spec.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  spec.ca,
		CRLDistributionPoints: spec.crlDP,
		SubjectKeyId:          spec.ski,
		ExtraExtensions:       spec.extra,
	}
	if spec.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.MaxPathLen = 1
		if parent != nil {
			tmpl.MaxPathLenZero = true
			tmpl.MaxPathLen = 0
		}
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("creating certificate %q: %w", spec.cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate %q: %w", spec.cn, err)
	}
	return &issued{cert: cert, key: key}, nil
}

// sgxExtension encodes the PCK certificate's SGX extension: PPID, TCB (16
// SGX components, PCESVN, CPUSVN), PCEID and FMSPC.
func sgxExtension(ppid []byte, cpuSVN [16]byte, pceSVN uint16, pceID, fmspc []byte) ([]byte, error) {
	type intEntry struct {
		ID  asn1.ObjectIdentifier
		Val int
	}
	type octEntry struct {
		ID  asn1.ObjectIdentifier
		Val []byte
	}
	raw := func(v any) (asn1.RawValue, error) {
		b, err := asn1.Marshal(v)
		return asn1.RawValue{FullBytes: b}, err
	}
	var tcb []asn1.RawValue
	for i := 0; i < 16; i++ {
		oid := append(append(asn1.ObjectIdentifier{}, oidTCB...), i+1)
		r, err := raw(intEntry{oid, int(cpuSVN[i])})
		if err != nil {
			return nil, err
		}
		tcb = append(tcb, r)
	}
	r, err := raw(intEntry{append(append(asn1.ObjectIdentifier{}, oidTCB...), 17), int(pceSVN)})
	if err != nil {
		return nil, err
	}
	tcb = append(tcb, r)
	if r, err = raw(octEntry{append(append(asn1.ObjectIdentifier{}, oidTCB...), 18), cpuSVN[:]}); err != nil {
		return nil, err
	}
	tcb = append(tcb, r)

	var entries []asn1.RawValue
	for _, v := range []any{
		octEntry{oidPPID, ppid},
		struct {
			ID  asn1.ObjectIdentifier
			Val []asn1.RawValue
		}{oidTCB, tcb},
		octEntry{oidPCEID, pceID},
		octEntry{oidFMSPC, fmspc},
	} {
		r, err := raw(v)
		if err != nil {
			return nil, err
		}
		entries = append(entries, r)
	}
	return asn1.Marshal(entries)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// rawSignature signs SHA-256(msg) and returns r‖s, 32 bytes each, the
// encoding used inside TDX quotes and PCS responses.
func rawSignature(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// rawPublicKey returns X‖Y (64 bytes) of a P-256 key.
func rawPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := pub.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		return nil, fmt.Errorf("encoding attestation key: %w", err)
	}
	return b[1:], nil
}
