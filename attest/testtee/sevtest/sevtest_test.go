package sevtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"

	"github.com/tdxl/tdxl/attest"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func attestation(t *testing.T, e *attest.Evidence) *spb.Attestation {
	t.Helper()
	att, err := abi.ReportCertsToProto(append(append([]byte(nil), e.Quote...), e.Certs...))
	if err != nil {
		t.Fatal(err)
	}
	return att
}

func TestVerifyAcceptsWithTestRoot(t *testing.T) {
	s, err := New(Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rd := attest.ReportData([]byte("spki"), []byte("nonce"))
	e, err := attest.IssueBound(context.Background(), s, []byte("spki"), []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.Marshal(e); err != nil {
		t.Fatal(err)
	}
	getter, err := s.Getter()
	if err != nil {
		t.Fatal(err)
	}
	att := attestation(t, e)
	opts := &verify.Options{TrustedRoots: s.TrustedRoots(), Getter: getter, Product: s.Product(), Now: now}
	if err := verify.SnpAttestation(att, opts); err != nil {
		t.Fatalf("verify: %v", err)
	}
	vmpl := 0
	if err := validate.SnpAttestation(att, &validate.Options{
		ReportData: rd[:], Measurement: s.opts.Measurement, GuestPolicy: abi.SnpPolicy{SMT: true}, VMPL: &vmpl,
	}); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// Without the test roots, go-sev-guest falls back to AMD's real roots: refused.
	opts = &verify.Options{Getter: getter, Product: s.Product(), Now: now}
	if err := verify.SnpAttestation(attestation(t, e), opts); err == nil {
		t.Fatal("verified under AMD's roots")
	}
	// A flipped report byte breaks the signature.
	bad := *e
	bad.Quote = append([]byte(nil), e.Quote...)
	bad.Quote[0x90] ^= 1
	opts = &verify.Options{TrustedRoots: s.TrustedRoots(), Getter: getter, Product: s.Product(), Now: now}
	if err := verify.SnpAttestation(attestation(t, &bad), opts); err == nil {
		t.Fatal("tampered report verified")
	}
}

func TestDebugPolicyRefusedByValidate(t *testing.T) {
	s, err := New(Options{Now: func() time.Time { return now }, Debug: true, Measurement: bytes.Repeat([]byte{1}, 48)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Issue(context.Background(), [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	att := attestation(t, e)
	getter, _ := s.Getter()
	if err := verify.SnpAttestation(att, &verify.Options{TrustedRoots: s.TrustedRoots(), Getter: getter, Product: s.Product(), Now: now}); err != nil {
		t.Fatalf("a debug guest's report is still genuine: %v", err)
	}
	err = validate.SnpAttestation(att, &validate.Options{GuestPolicy: abi.SnpPolicy{SMT: true}})
	if err == nil || !strings.Contains(err.Error(), "debug") {
		t.Fatalf("validate debug = %v", err)
	}
	if !bytes.Equal(att.GetReport().GetMeasurement(), bytes.Repeat([]byte{1}, 48)) {
		t.Fatal("measurement not set")
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{Measurement: []byte{1}}); err == nil {
		t.Fatal("short measurement accepted")
	}
}
