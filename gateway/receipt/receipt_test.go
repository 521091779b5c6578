package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/tdxl/tdxl/gateway/envelope"
)

func sum(b string) []byte { h := sha256.Sum256([]byte(b)); return h[:] }

func sample(t testing.TB, k *ecdsa.PrivateKey) *Receipt {
	kid, err := envelope.KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Receipt{Version: Version, Path: "/api/text2image", RequestSHA256: sum("req"),
		ResponseSHA256: sum("resp"), ResponseID: "0b6f", Images: []Image{
			{Name: "/images/0b6f/0_0.png", SHA256: sum("png0")}, {Name: "/images/0b6f/0_1.png", SHA256: sum("png1")}},
		ModelSHA256: sum("model"), EvidenceSHA256: sum("evidence"), SPKISHA256: kid, Time: time.Now()}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r := sample(t, k)
	msg, err := Sign(k, r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyReceipt(msg, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if got.ResponseID != r.ResponseID || len(got.Images) != 2 || !got.Time.Equal(r.Time) ||
		!bytes.Equal(got.ModelSHA256, r.ModelSHA256) {
		t.Fatalf("round trip changed the receipt: %+v", got)
	}
	if !got.HasImage([]byte("png1")) || got.HasImage([]byte("png2")) {
		t.Fatal("HasImage")
	}
	if d, ok := got.ImageSHA256("/images/0b6f/0_0.png"); !ok || !bytes.Equal(d, sum("png0")) {
		t.Fatal("ImageSHA256")
	}
}

func TestVerifyRefusesOtherKeyAndTampering(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	msg, err := Sign(k, sample(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(msg, other.Public()); !errors.Is(err, envelope.ErrWrongKey) {
		t.Fatalf("other key: got %v, want ErrWrongKey", err)
	}
	for i := range msg {
		m := bytes.Clone(msg)
		m[i] ^= 0x80
		if _, err := VerifyReceipt(m, k.Public()); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	// A receipt naming another key in its payload, though signed by k.
	r := sample(t, k)
	r.SPKISHA256 = sum("someone else")
	msg, err = Sign(k, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(msg, k.Public()); !errors.Is(err, envelope.ErrWrongKey) {
		t.Fatalf("payload names other key: got %v, want ErrWrongKey", err)
	}
	// An evidence envelope is not a receipt.
	if _, err := VerifyReceipt(mustSign(t, k, envelope.ContentTypeEvidence), k.Public()); !errors.Is(err, envelope.ErrMalformed) {
		t.Fatalf("evidence as receipt: got %v, want ErrMalformed", err)
	}
}

func mustSign(t *testing.T, k *ecdsa.PrivateKey, ct string) []byte {
	m, err := envelope.Sign(k, ct, []byte{0xa0})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckRefusesBadShapes(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := map[string]func(r *Receipt){
		"version":          func(r *Receipt) { r.Version = 2 },
		"no path":          func(r *Receipt) { r.Path = "" },
		"short request":    func(r *Receipt) { r.RequestSHA256 = r.RequestSHA256[:31] },
		"short response":   func(r *Receipt) { r.ResponseSHA256 = nil },
		"short model":      func(r *Receipt) { r.ModelSHA256 = []byte{1} },
		"no evidence":      func(r *Receipt) { r.EvidenceSHA256 = nil },
		"no spki":          func(r *Receipt) { r.SPKISHA256 = nil },
		"zero time":        func(r *Receipt) { r.Time = time.Time{} },
		"image no name":    func(r *Receipt) { r.Images[0].Name = "" },
		"image bad digest": func(r *Receipt) { r.Images[1].SHA256 = []byte{1, 2} },
		"bad utf8 id":      func(r *Receipt) { r.ResponseID = "\xff" },
	}
	for name, mut := range cases {
		r := sample(t, k)
		mut(r)
		if _, err := Marshal(r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestUnmarshalStrict(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, err := Marshal(sample(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(append(bytes.Clone(b), 0x00)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: got %v", err)
	}
	// Unknown key: bump the map header count and append "zz": 0.
	ext := bytes.Clone(b)
	if ext[0]&0xe0 != 0xa0 || ext[0]&0x1f >= 23 {
		t.Fatalf("unexpected map header %x", ext[0])
	}
	ext[0]++
	ext = append(ext, 0x62, 'z', 'z', 0x00)
	if _, err := Unmarshal(ext); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown key: got %v", err)
	}
}

// FuzzVerifyReceipt: arbitrary bytes never panic the receipt parsers, and any
// accepted payload survives a re-marshal round trip.
func FuzzVerifyReceipt(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r := sample(f, k)
	msg, err := Sign(k, r)
	if err != nil {
		f.Fatal(err)
	}
	payload, _ := Marshal(r)
	f.Add(msg)
	f.Add(payload)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = VerifyReceipt(b, k.Public())
		got, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := Marshal(got)
		if err != nil {
			t.Fatalf("accepted receipt does not re-marshal: %v", err)
		}
		if _, err := Unmarshal(again); err != nil {
			t.Fatalf("re-marshaled receipt does not parse: %v", err)
		}
	})
}
