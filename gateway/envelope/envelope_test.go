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
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/veraison/go-cose"
)

func keys(t testing.TB) map[string]crypto.Signer {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"p256": p256, "p384": p384, "ed25519": ed, "rsa": r}
}

func testEvidence(t testing.TB, pub crypto.PublicKey) *attest.Evidence {
	kid, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEENone, Unattested: true,
		SPKISHA256: kid, Time: time.Now().UTC(), Nonce: bytes.Repeat([]byte{7}, 16)}
}

func TestSignOpenEveryKeyType(t *testing.T) {
	ks := keys(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, k := range ks {
		t.Run(name, func(t *testing.T) {
			ev := testEvidence(t, k.Public())
			msg, err := SignEvidence(k, ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := OpenEvidence(msg, k.Public())
			if err != nil {
				t.Fatalf("OpenEvidence with the signing key: %v", err)
			}
			if !bytes.Equal(got.Nonce, ev.Nonce) || got.TEE != attest.TEENone || !got.Unattested {
				t.Fatalf("round trip changed evidence: %+v", got)
			}
			if _, err := OpenEvidence(msg, other.Public()); !errors.Is(err, ErrWrongKey) {
				t.Fatalf("other key: got %v, want ErrWrongKey", err)
			}
			if _, err := Open(msg, k.Public(), ContentTypeReceipt); !errors.Is(err, ErrMalformed) {
				t.Fatalf("wrong content type: got %v, want ErrMalformed", err)
			}
		})
	}
}

// A forger who copies the victim's kid into a message signed by its own key
// must fail on the signature, not pass on the kid.
func TestForgedKidFailsSignature(t *testing.T) {
	victim, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kid, _ := KeyID(victim.Public())
	signer, _ := cose.NewSigner(cose.AlgorithmES256, forger)
	payload, err := attest.Marshal(testEvidence(t, victim.Public()))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cose.Sign1(rand.Reader, signer, cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmES256, cose.HeaderLabelContentType: ContentTypeEvidence,
		cose.HeaderLabelKeyID: kid}}, payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEvidence(msg, victim.Public()); !errors.Is(err, ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", err)
	}
}

// The algorithm comes from the key; a message declaring another algorithm
// for the same key is refused.
func TestAlgorithmMustMatchKey(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kid, _ := KeyID(k.Public())
	signer, _ := cose.NewSigner(cose.AlgorithmES256, k)
	msg, err := cose.Sign1(rand.Reader, signer, cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmES256, cose.HeaderLabelContentType: ContentTypeReceipt,
		cose.HeaderLabelKeyID: kid}}, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(msg); err != nil {
		t.Fatal(err)
	}
	m.Headers.Protected[cose.HeaderLabelAlgorithm] = cose.AlgorithmES384
	m.Headers.RawProtected = nil
	bad, err := m.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, k.Public(), ContentTypeReceipt); !errors.Is(err, ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", err)
	}
}

func TestTamperedPayloadOrSignature(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	msg, err := SignEvidence(k, testEvidence(t, k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range msg {
		m := bytes.Clone(msg)
		m[i] ^= 0x01
		if _, err := OpenEvidence(m, k.Public()); err == nil {
			t.Fatalf("flipping bit 0 of byte %d was accepted", i)
		}
	}
}

func TestUnsupportedKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for _, pub := range []crypto.PublicKey{small.Public(), p224.Public(), "not a key"} {
		if _, err := AlgorithmFor(pub); !errors.Is(err, ErrUnsupportedKey) {
			t.Fatalf("%T: got %v, want ErrUnsupportedKey", pub, err)
		}
	}
}

func TestEvidenceFromCertificate(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	msg, err := SignEvidence(k, testEvidence(t, k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: EvidenceExtensionOID, Value: msg}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	got, err := EvidenceFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEvidence(got, cert.PublicKey); err != nil {
		t.Fatal(err)
	}
	tmpl.ExtraExtensions = nil
	der, _ = x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	cert, _ = x509.ParseCertificate(der)
	if _, err := EvidenceFromCertificate(cert); !errors.Is(err, ErrNoExtension) {
		t.Fatalf("got %v, want ErrNoExtension", err)
	}
}

func TestKeyIDIsSPKIHash(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(k.Public())
	want := sha256.Sum256(spki)
	got, _ := KeyID(k.Public())
	if !bytes.Equal(got, want[:]) {
		t.Fatal("kid is not SHA-256(SPKI)")
	}
}

// FuzzOpenEvidence feeds arbitrary bytes to the evidence envelope parser: it
// must never panic, and anything it accepts must re-verify.
func FuzzOpenEvidence(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ev := testEvidence(f, k.Public())
	msg, err := SignEvidence(k, ev)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := Payload(b, ContentTypeEvidence); err == nil {
			_, _ = attest.Unmarshal(p)
		}
		got, err := OpenEvidence(b, k.Public())
		if err != nil {
			return
		}
		again, err := SignEvidence(k, got)
		if err != nil {
			t.Fatalf("accepted evidence does not re-marshal: %v", err)
		}
		if _, err := OpenEvidence(again, k.Public()); err != nil {
			t.Fatalf("re-signed evidence does not open: %v", err)
		}
	})
}
