package snp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	sevtesting "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/internal/tsmtest"
	"github.com/tdxl/tdxl/attest/testtee/sevtest"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func guest(t *testing.T) *sevtest.SNP {
	t.Helper()
	s, err := sevtest.New(sevtest.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifyEvidence(t *testing.T, s *sevtest.SNP, e *attest.Evidence, rd [64]byte) {
	t.Helper()
	if e.TEE != attest.TEESEVSNP || len(e.Quote) != abi.ReportSize || !e.Time.Equal(now) {
		t.Fatalf("evidence: tee %v, %d bytes, %v", e.TEE, len(e.Quote), e.Time)
	}
	att, err := abi.ReportCertsToProto(append(append([]byte(nil), e.Quote...), e.Certs...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(att.GetReport().GetReportData(), rd[:]) {
		t.Fatal("report data not bound")
	}
	g, _ := s.Getter()
	if err := verify.SnpAttestation(att, &verify.Options{TrustedRoots: s.TrustedRoots(), Getter: g, Product: s.Product(), Now: now}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestConfigFS(t *testing.T) {
	s := guest(t)
	c := tsmtest.Client("sev_guest", func(in []byte) ([]byte, error) {
		var rd [64]byte
		copy(rd[:], in)
		return s.Report(rd)
	}, s.CertTable())
	p, err := New(Options{Root: t.TempDir(), ConfigFS: c, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method() != MethodConfigFS || p.TEE() != attest.TEESEVSNP {
		t.Fatalf("method %q", p.Method())
	}
	rd := attest.ReportData([]byte("spki"), []byte("n"))
	e, err := p.Issue(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	verifyEvidence(t, s, e, rd)
}

func TestDeviceFallback(t *testing.T) {
	s := guest(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "dev", "sev-guest"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rd := attest.ReportData([]byte("spki"), nil)
	unsigned, err := s.Report(rd) // the fake device re-signs it
	if err != nil {
		t.Fatal(err)
	}
	var out [labi.SnpReportRespReportSize]byte
	copy(out[:], unsigned)
	dev, err := sevtesting.TcDevice([]sevtesting.TestCase{{Input: rd, Output: out}},
		&sevtesting.DeviceOptions{Signer: s.Signer(), Product: s.Product(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Root: root, ConfigFS: tsmtest.Client("tdx_guest", nil, nil),
		OpenDevice: func(path string) (client.Device, error) { return dev, dev.Open(path) },
		Now:        func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method() != MethodDevice {
		t.Fatalf("method %q", p.Method())
	}
	e, err := p.Issue(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	verifyEvidence(t, s, e, rd)
}

func TestNotSNP(t *testing.T) {
	for name, opts := range map[string]Options{
		"empty root":   {Root: t.TempDir()},
		"tdx configfs": {Root: t.TempDir(), ConfigFS: tsmtest.Client("tdx_guest", nil, nil)},
	} {
		if _, err := New(opts); !errors.Is(err, ErrNotSNP) || !errors.Is(err, attest.ErrNoTEE) {
			t.Errorf("%s: New = %v", name, err)
		}
	}
}
