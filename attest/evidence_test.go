package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func sampleEvidence() *Evidence {
	h := sha256.Sum256([]byte("spki"))
	m := sha256.Sum256([]byte("model"))
	b := sha256.Sum256([]byte("backend"))
	return &Evidence{
		Version:    Version,
		TEE:        TEETDX,
		Quote:      []byte{4, 0, 2, 0, 0x81},
		Nonce:      bytes.Repeat([]byte{0xaa}, 32),
		SPKISHA256: h[:],
		EventLog: []Event{
			NewEvent(0, EventModel, m[:], "stabilityai/sdxl-turbo"),
			NewEvent(1, EventBackendBinary, b[:], "/usr/bin/tdxl-backend"),
		},
		RTMRExtended:   true,
		GatewayVersion: "v0.1.0",
		Time:           time.Date(2026, 11, 29, 0, 0, 0, 123, time.UTC),
		Collateral: []Collateral{
			{URL: "https://a.example/tcb", Header: map[string][]string{"Tcb-Info-Issuer-Chain": {"x"}}, Body: []byte("{}")},
			{URL: "https://b.example/qe", Body: []byte("{}")},
		},
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	e := sampleEvidence()
	b, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs")
	}
	if !got.Time.Equal(e.Time) || got.TEE != e.TEE || !bytes.Equal(got.Quote, e.Quote) ||
		len(got.EventLog) != 2 || got.EventLog[0].Description != "stabilityai/sdxl-turbo" ||
		got.Collateral[0].Header["Tcb-Info-Issuer-Chain"][0] != "x" {
		t.Fatalf("round trip lost data: %+v", got)
	}
	// Deterministic: the same document encodes to the same bytes.
	b3, _ := Marshal(sampleEvidence())
	if !bytes.Equal(b, b3) {
		t.Fatal("encoding is not deterministic")
	}
}

func TestMarshalUnattested(t *testing.T) {
	h := sha256.Sum256([]byte("spki"))
	e := &Evidence{Version: Version, TEE: TEENone, Unattested: true, SPKISHA256: h[:], Time: time.Unix(1, 0)}
	b, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil || !got.Unattested || got.TEE != TEENone || got.Quote != nil {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// encodeMap encodes a map with the given overrides applied to a valid document.
func encodeMap(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := Marshal(sampleEvidence())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := cbor.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnmarshalRejects(t *testing.T) {
	valid, _ := Marshal(sampleEvidence())
	// A duplicate "tee" key, spliced by hand: map header count+1 then the pair.
	dup := append([]byte{}, valid...)
	dup[0]++ // map(n) -> map(n+1) (n < 24 so the count is in the first byte)
	dup = append(dup, 0x63, 't', 'e', 'e', 0x63, 't', 'd', 'x')

	cases := map[string]struct {
		in   []byte
		want error
	}{
		"empty":             {nil, ErrMalformed},
		"not a map":         {[]byte{0x80}, ErrMalformed},
		"trailing bytes":    {append(append([]byte{}, valid...), 0), ErrMalformed},
		"duplicate key":     {dup, ErrMalformed},
		"unknown field":     {encodeMap(t, func(m map[string]any) { m["extra"] = 1 }), ErrMalformed},
		"version 2":         {encodeMap(t, func(m map[string]any) { m["version"] = 2; m["new"] = true }), ErrUnsupportedVersion},
		"no version":        {encodeMap(t, func(m map[string]any) { delete(m, "version") }), ErrUnsupportedVersion},
		"unknown tee":       {encodeMap(t, func(m map[string]any) { m["tee"] = "sgx" }), ErrMalformed},
		"no quote":          {encodeMap(t, func(m map[string]any) { delete(m, "quote") }), ErrMalformed},
		"unattested tdx":    {encodeMap(t, func(m map[string]any) { m["unattested"] = true }), ErrMalformed},
		"none with quote":   {encodeMap(t, func(m map[string]any) { m["tee"] = "none"; m["unattested"] = true; m["rtmr_extended"] = false }), ErrMalformed},
		"short spki hash":   {encodeMap(t, func(m map[string]any) { m["spki_sha256"] = []byte{1} }), ErrMalformed},
		"long nonce":        {encodeMap(t, func(m map[string]any) { m["nonce"] = make([]byte, 65) }), ErrMalformed},
		"no time":           {encodeMap(t, func(m map[string]any) { delete(m, "time") }), ErrMalformed},
		"bad time":          {encodeMap(t, func(m map[string]any) { m["time"] = "yesterday" }), ErrMalformed},
		"certs with tdx":    {encodeMap(t, func(m map[string]any) { m["certs"] = []byte{1} }), ErrMalformed},
		"wrong type":        {encodeMap(t, func(m map[string]any) { m["quote"] = "text" }), ErrMalformed},
		"tagged value":      {encodeMap(t, func(m map[string]any) { m["quote"] = cbor.Tag{Number: 24, Content: []byte{1}} }), ErrMalformed},
		"unsorted collat":   {encodeMap(t, func(m map[string]any) { c := m["collateral"].([]any); c[0], c[1] = c[1], c[0] }), ErrMalformed},
		"event bad index":   {encodeMap(t, func(m map[string]any) { ev(m, 1)["index"] = 5 }), ErrMalformed},
		"event register 2":  {encodeMap(t, func(m map[string]any) { ev(m, 0)["register"] = 2 }), ErrMalformed},
		"event bad type":    {encodeMap(t, func(m map[string]any) { ev(m, 0)["type"] = "kernel" }), ErrMalformed},
		"event digest lie":  {encodeMap(t, func(m map[string]any) { ev(m, 0)["digest"] = make([]byte, 48) }), ErrMalformed},
		"event short meas":  {encodeMap(t, func(m map[string]any) { ev(m, 0)["measurement"] = []byte{1} }), ErrMalformed},
		"event extra field": {encodeMap(t, func(m map[string]any) { ev(m, 0)["pcr"] = 1 }), ErrMalformed},
		"too large":         {make([]byte, MaxEvidenceSize+1), ErrMalformed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := Unmarshal(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unmarshal = %v, %v; want %v", e, err, tc.want)
			}
		})
	}
}

func ev(m map[string]any, i int) map[any]any {
	return m["event_log"].([]any)[i].(map[any]any)
}

func TestMarshalRejectsInvalid(t *testing.T) {
	e := sampleEvidence()
	e.SPKISHA256 = nil
	if _, err := Marshal(e); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Marshal without spki hash: %v", err)
	}
	if _, err := Marshal(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Marshal(nil): %v", err)
	}
	e = sampleEvidence()
	e.Version = 0
	if _, err := Marshal(e); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("Marshal version 0: %v", err)
	}
}

func TestReportData(t *testing.T) {
	spki := []byte("a DER SubjectPublicKeyInfo")
	nonce := bytes.Repeat([]byte{7}, 32)
	h := sha256.Sum256(spki)
	want := sha512.Sum512(append(append([]byte("tdxl/attest/v1"), h[:]...), nonce...))
	if got := ReportData(spki, nonce); got != want {
		t.Fatalf("ReportData = %x, want %x", got, want)
	}
	if ReportDataFromHash(h, nonce) != want {
		t.Fatal("ReportDataFromHash differs from ReportData")
	}
	if ReportData(spki, nil) == want || ReportData([]byte("other key"), nonce) == want {
		t.Fatal("binding ignores nonce or key")
	}
	// Pinned known answer (computed independently with Python hashlib):
	// changing the binding breaks deployed verifiers.
	const kat = "3b037f7864b660b62a8296fc2d2b987da342b7ce836a6b4aedca91c2d0729f665520a0499481bd4f9a8f93e7174c7fef0732169e5bc661db6350972e442a3b9c" // computed with Python hashlib
	if got := ReportData([]byte("spki"), []byte("nonce")); hex.EncodeToString(got[:]) != kat {
		t.Fatalf("ReportData KAT = %x", got)
	}
}

type fakeIssuer struct{ rd [64]byte }

func (f *fakeIssuer) TEE() TEE { return TEETDX }
func (f *fakeIssuer) Issue(ctx context.Context, rd [64]byte) (*Evidence, error) {
	f.rd = rd
	return &Evidence{Version: Version, TEE: TEETDX, Quote: rd[:], Time: time.Unix(5, 0)}, nil
}

func TestIssueBound(t *testing.T) {
	var f fakeIssuer
	spki, nonce := []byte("spki"), []byte("0123456789abcdef")
	e, err := IssueBound(context.Background(), &f, spki, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if f.rd != ReportData(spki, nonce) {
		t.Fatal("issuer got the wrong report data")
	}
	h := sha256.Sum256(spki)
	if !bytes.Equal(e.SPKISHA256, h[:]) || !bytes.Equal(e.Nonce, nonce) {
		t.Fatalf("binding fields not filled: %+v", e)
	}
	if _, err := Marshal(e); err != nil {
		t.Fatal(err)
	}
	if _, err := IssueBound(context.Background(), &f, spki, make([]byte, 65)); err == nil {
		t.Fatal("65-byte nonce accepted")
	}
}
