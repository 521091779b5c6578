package attest

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"
)

// FuzzUnmarshalEvidence: Unmarshal never panics, and whatever it accepts
// re-encodes to a document that decodes to the same bytes again (the
// encoding is canonical after one round).
func FuzzUnmarshalEvidence(f *testing.F) {
	if b, err := Marshal(sampleEvidence()); err == nil {
		f.Add(b)
	}
	h := sha256.Sum256(nil)
	if b, err := Marshal(&Evidence{Version: Version, TEE: TEENone, Unattested: true, SPKISHA256: h[:], Time: time.Unix(0, 1)}); err == nil {
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		b1, err := Marshal(e)
		if err != nil {
			t.Fatalf("accepted evidence does not re-encode: %v", err)
		}
		e2, err := Unmarshal(b1)
		if err != nil {
			t.Fatalf("re-encoded evidence rejected: %v", err)
		}
		b2, err := Marshal(e2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}
