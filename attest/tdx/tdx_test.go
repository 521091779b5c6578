package tdx

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/client"
	labi "github.com/google/go-tdx-guest/client/linuxabi"
	tdxtesting "github.com/google/go-tdx-guest/testing"
	"github.com/google/go-tdx-guest/verify"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/internal/tsmtest"
	"github.com/tdxl/tdxl/attest/testtee"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func testTD(t *testing.T) *testtee.TDX {
	t.Helper()
	td, err := testtee.NewTDX(testtee.TDXOptions{Seed: []byte("tdx provider"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return td
}

func quoteFor(td *testtee.TDX) func([]byte) ([]byte, error) {
	return func(in []byte) ([]byte, error) {
		var rd [64]byte
		copy(rd[:], in)
		return td.Quote(rd)
	}
}

func checkQuote(t *testing.T, td *testtee.TDX, e *attest.Evidence, rd [64]byte) {
	t.Helper()
	if e.TEE != attest.TEETDX || !e.Time.Equal(now) {
		t.Fatalf("evidence %v %v", e.TEE, e.Time)
	}
	if !bytes.Equal(e.Quote[0x238:0x278], rd[:]) {
		t.Fatal("quote does not carry the report data")
	}
	err := verify.RawTdxQuote(e.Quote, &verify.Options{TrustedRoots: td.RootPool(), Getter: td.Getter(),
		GetCollateral: true, CheckRevocations: true,
		Now: &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestConfigFS(t *testing.T) {
	td := testTD(t)
	opts := Options{Root: t.TempDir(), ConfigFS: tsmtest.Client("tdx_guest", quoteFor(td), nil), Now: func() time.Time { return now }}
	if m, err := Detect(opts); err != nil || m != MethodConfigFS {
		t.Fatalf("Detect = %q, %v", m, err)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rd := attest.ReportData([]byte("spki"), []byte("nonce"))
	e, err := p.Issue(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	checkQuote(t, td, e, rd)
	if p.TEE() != attest.TEETDX || p.Method() != MethodConfigFS {
		t.Fatal("wrong TEE/method")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Issue(ctx, rd); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Issue: %v", err)
	}
}

func TestConfigFSGarbageQuote(t *testing.T) {
	opts := Options{ConfigFS: tsmtest.Client("tdx_guest", func([]byte) ([]byte, error) { return []byte("not a quote"), nil }, nil)}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Issue(context.Background(), [64]byte{}); err == nil {
		t.Fatal("garbage quote accepted")
	}
}

func TestDeviceFallback(t *testing.T) {
	td := testTD(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dev", "tdx_guest"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rd := attest.ReportData([]byte("spki"), nil)
	q, err := td.Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	// go-tdx-guest's fake ioctl device, programmed with our quote.
	dev, err := tdxtesting.TcDevice([]tdxtesting.TestCase{{Input: rd, Report: [labi.TdReportSize]byte{1}, Quote: q}})
	if err != nil {
		t.Fatal(err)
	}
	var opened string
	opts := Options{
		Root:     root,
		ConfigFS: tsmtest.Client("sev_guest", nil, nil), // configfs present but not TDX
		OpenDevice: func(path string) (client.Device, error) {
			opened = path
			return dev, dev.Open(path)
		},
		Now: func() time.Time { return now },
	}
	p, err := New(opts)
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
	if opened != filepath.Join(root, DevicePath) {
		t.Fatalf("opened %q", opened)
	}
	checkQuote(t, td, e, rd)
}

func TestNotTDX(t *testing.T) {
	for name, opts := range map[string]Options{
		"empty root":   {Root: t.TempDir()},
		"sev configfs": {Root: t.TempDir(), ConfigFS: tsmtest.Client("sev_guest", nil, nil)},
	} {
		if _, err := New(opts); !errors.Is(err, ErrNotTDX) || !errors.Is(err, attest.ErrNoTEE) {
			t.Errorf("%s: New = %v", name, err)
		}
	}
}
