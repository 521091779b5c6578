package provider

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/internal/tsmtest"
	"github.com/tdxl/tdxl/attest/measure"
	"github.com/tdxl/tdxl/attest/snp"
	"github.com/tdxl/tdxl/attest/tdx"
	"github.com/tdxl/tdxl/attest/testtee"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func TestAutoDetection(t *testing.T) {
	td, err := testtee.NewTDX(testtee.TDXOptions{Seed: []byte("p"), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	quote := func(in []byte) ([]byte, error) { var rd [64]byte; copy(rd[:], in); return td.Quote(rd) }

	// configfs-tsm says tdx_guest → TDX with the sysfs extender under Root.
	root := t.TempDir()
	src, err := Open(Options{Kind: KindAuto, Root: root, Now: clock, TDX: tdx.Options{ConfigFS: tsmtest.Client("tdx_guest", quote, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind != KindTDX || src.Issuer.TEE() != attest.TEETDX {
		t.Fatalf("auto picked %q", src.Kind)
	}
	if ext, ok := src.Extender.(measure.SysfsExtender); !ok || ext.Root != root {
		t.Fatalf("extender %#v", src.Extender)
	}
	if e, err := src.Issuer.Issue(context.Background(), [64]byte{}); err != nil || e.TEE != attest.TEETDX {
		t.Fatalf("Issue = %v, %v", e, err)
	}

	// Only /dev/sev-guest → SEV-SNP.
	root = t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, snp.DevicePath), nil, 0o600)
	src, err = Open(Options{Kind: KindAuto, Root: root})
	if err != nil || src.Kind != KindSEVSNP || src.Extender != nil {
		t.Fatalf("auto on SNP = %+v, %v", src, err)
	}

	// /dev/tdx_guest wins over SEV-SNP.
	os.WriteFile(filepath.Join(root, tdx.DevicePath), nil, 0o600)
	if src, err = Open(Options{Kind: KindAuto, Root: root}); err != nil || src.Kind != KindTDX {
		t.Fatalf("auto with both = %+v, %v", src, err)
	}

	// Nothing → fails, never falls back to none.
	if _, err := Open(Options{Kind: KindAuto, Root: t.TempDir()}); !errors.Is(err, attest.ErrNoTEE) {
		t.Fatalf("auto on a plain machine = %v", err)
	}
	if _, err := Open(Options{Kind: KindTDX, Root: t.TempDir()}); !errors.Is(err, attest.ErrNoTEE) {
		t.Fatalf("tdx on a plain machine = %v", err)
	}
	if _, err := Open(Options{Kind: KindSEVSNP, Root: t.TempDir()}); !errors.Is(err, attest.ErrNoTEE) {
		t.Fatalf("sev-snp on a plain machine = %v", err)
	}
	if _, err := Open(Options{Kind: "sgx"}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("unknown kind = %v", err)
	}
}

func TestNone(t *testing.T) {
	src, err := Open(Options{Kind: KindNone, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e, err := attest.IssueBound(context.Background(), src.Issuer, []byte("spki"), []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := attest.Unmarshal(b)
	if err != nil || !got.Unattested || got.TEE != attest.TEENone || len(got.Quote) != 0 || !got.Time.Equal(now) {
		t.Fatalf("none evidence = %+v, %v", got, err)
	}
	if src.Extender != nil {
		t.Fatal("none has an extender")
	}
}

func TestSimulated(t *testing.T) {
	src, err := Open(Options{Kind: KindSimulated, Now: clock, Simulated: testtee.SimulatedOptions{Seed: "x", Debug: true}})
	if err != nil {
		t.Fatal(err)
	}
	if src.Simulated == nil || src.Issuer.TEE() != attest.TEETDX || src.Extender == nil {
		t.Fatalf("simulated source %+v", src)
	}
	log := measure.NewLog(src.Extender, nil)
	if _, err := log.Record(attest.EventModel, [32]byte{1}, "m"); err != nil {
		t.Fatal(err)
	}
	e, err := src.Issuer.Issue(context.Background(), [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	want := attest.ReplayRTMR(log.Events())
	if string(e.Quote[0x30+0x148+3*48:0x30+0x148+4*48]) != string(want[:]) {
		t.Fatal("simulated RTMR3 does not follow the log")
	}
	if len(e.Collateral) == 0 {
		t.Fatal("simulated evidence carries no collateral")
	}
	if _, err := Open(Options{Kind: KindSimulated, Simulated: testtee.SimulatedOptions{MRTD: "00"}}); err == nil {
		t.Fatal("bad simulated MRTD accepted")
	}
}
