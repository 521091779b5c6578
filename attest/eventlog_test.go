package attest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"
)

func TestEventDigestKAT(t *testing.T) {
	m := sha256.Sum256([]byte("model"))
	got := EventDigest(EventModel, m[:])
	// Computed independently: python3 hashlib.sha384(b"tdxl/event/v1\0model\0" + sha256(b"model")).
	const want = "ad095ea09558075f3d6d1a6b577734fe09a8f3a4940436029310dff4d51b7a00682d057753eadd2ef84ef13b75f3953a"
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("EventDigest = %x, want %s", got, want)
	}
	if EventDigest(EventConfig, m[:]) == got {
		t.Fatal("event type is not bound into the digest")
	}
}

func TestReplayRTMR(t *testing.T) {
	var zero [48]byte
	if ReplayRTMR(nil) != zero {
		t.Fatal("empty log must replay to zero")
	}
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	evs := []Event{NewEvent(0, EventModel, a[:], ""), NewEvent(1, EventConfig, b[:], "")}
	// Independent replay: r = SHA384(r || d).
	r := make([]byte, 48)
	for _, e := range evs {
		s := sha512.Sum384(append(append([]byte{}, r...), e.Digest...))
		r = s[:]
	}
	got := ReplayRTMR(evs)
	if hex.EncodeToString(got[:]) != hex.EncodeToString(r) {
		t.Fatalf("ReplayRTMR = %x, want %x", got, r)
	}
	var d0, d1 [48]byte
	copy(d0[:], evs[0].Digest)
	copy(d1[:], evs[1].Digest)
	if ExtendRTMR(ExtendRTMR(zero, d0), d1) != got {
		t.Fatal("ExtendRTMR disagrees with ReplayRTMR")
	}
	if ReplayRTMR([]Event{evs[1], evs[0]}) == got {
		t.Fatal("replay ignores order")
	}
	if ReplayRTMR(evs[:1]) == got {
		t.Fatal("replay ignores a dropped event")
	}
}

func TestCheckEvents(t *testing.T) {
	a := sha256.Sum256([]byte("a"))
	good := []Event{NewEvent(0, EventModel, a[:], "m"), NewEvent(1, EventGatewayBinary, a[:], "g")}
	if err := CheckEvents(good); err != nil {
		t.Fatal(err)
	}
	mut := map[string]func(e *Event){
		"index":       func(e *Event) { e.Index = 7 },
		"register":    func(e *Event) { e.Register = 2 },
		"type":        func(e *Event) { e.Type = "kernel" },
		"measurement": func(e *Event) { e.Measurement = e.Measurement[:31] },
		"digest":      func(e *Event) { e.Digest = append([]byte{}, e.Digest...); e.Digest[0] ^= 1 },
		"description": func(e *Event) { e.Description = string(make([]byte, MaxDescriptionLen+1)) },
	}
	for name, f := range mut {
		evs := append([]Event{}, good...)
		f(&evs[1])
		if err := CheckEvents(evs); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: CheckEvents = %v, want ErrMalformed", name, err)
		}
	}
}
