package measure

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tdxl/tdxl/attest"
)

func TestSysfsExtender(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, SysfsRTMRDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "rtmr3:sha384")
	if err := os.WriteFile(f, make([]byte, 48), 0o644); err != nil {
		t.Fatal(err)
	}
	s := SysfsExtender{Root: root}
	var d [48]byte
	d[0] = 9
	if err := s.Extend(3, d); err != nil {
		t.Fatal(err)
	}
	// A plain file stands in for the kernel attribute: the write lands as is.
	b, _ := os.ReadFile(f)
	if !bytes.Equal(b, d[:]) {
		t.Fatalf("wrote %x", b)
	}
	got, err := s.Read(3)
	if err != nil || got != d {
		t.Fatalf("Read = %x, %v", got, err)
	}
	// Hex form is accepted on read.
	os.WriteFile(f, []byte(hex.EncodeToString(d[:])+"\n"), 0o644)
	if got, err := s.Read(3); err != nil || got != d {
		t.Fatalf("Read hex = %x, %v", got, err)
	}
	os.WriteFile(f, []byte("short"), 0o644)
	if _, err := s.Read(3); err == nil {
		t.Fatal("short value accepted")
	}
	if err := s.Extend(2, d); !errors.Is(err, ErrRTMRUnavailable) {
		t.Fatalf("missing rtmr2: %v", err)
	}
	if _, err := (SysfsExtender{Root: t.TempDir()}).Read(3); !errors.Is(err, ErrRTMRUnavailable) {
		t.Fatalf("no sysfs: %v", err)
	}
	if err := s.Extend(4, d); err == nil {
		t.Fatal("RTMR4 accepted")
	}
}

func TestFakeExtender(t *testing.T) {
	var f FakeExtender
	var d [48]byte
	d[47] = 1
	if err := f.Extend(3, d); err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum384(append(make([]byte, 48), d[:]...))
	if got, _ := f.Read(3); got != want {
		t.Fatalf("RTMR3 = %x, want %x", got, want)
	}
	if err := f.Extend(0, d); err == nil {
		t.Fatal("RTMR0 extended")
	}
}

func digest32(s string) [32]byte {
	var out [32]byte
	h := sha512.Sum512_256([]byte(s))
	copy(out[:], h[:])
	return out
}

func TestLogExtends(t *testing.T) {
	var f FakeExtender
	l := NewLog(&f, nil)
	if ok, status := l.Extended(); ok || status == "" {
		t.Fatalf("empty log: %v %q", ok, status)
	}
	for _, typ := range []attest.EventType{attest.EventModel, attest.EventBackendBinary, attest.EventGatewayBinary, attest.EventConfig} {
		if _, err := l.Record(typ, digest32(string(typ)), string(typ)); err != nil {
			t.Fatal(err)
		}
	}
	rtmr3, _ := f.Read(3)
	if attest.ReplayRTMR(l.Events()) != rtmr3 {
		t.Fatal("event log does not replay to RTMR3")
	}
	if err := attest.CheckEvents(l.Events()); err != nil {
		t.Fatal(err)
	}
	e := &attest.Evidence{TEE: attest.TEETDX}
	l.Apply(e)
	if !e.RTMRExtended || len(e.EventLog) != 4 || e.RTMRStatus != "extended" {
		t.Fatalf("Apply: %+v", e)
	}
	snp := &attest.Evidence{TEE: attest.TEESEVSNP}
	l.Apply(snp)
	if snp.RTMRExtended || snp.RTMRStatus != "not a TDX quote" {
		t.Fatalf("Apply on SNP: %v %q", snp.RTMRExtended, snp.RTMRStatus)
	}
	if _, err := l.Record("kernel", digest32("k"), ""); err == nil {
		t.Fatal("unknown type recorded")
	}
}

func TestLogNotExtended(t *testing.T) {
	cases := map[string]struct {
		ext  Extender
		want string
	}{
		"no extender":    {nil, "no RTMR extender"},
		"no sysfs":       {SysfsExtender{Root: t.TempDir()}, "unavailable"},
		"already used":   {func() Extender { f := &FakeExtender{}; f.Extend(3, [48]byte{1}); return f }(), "already extended"},
		"extend refused": {&failingExtend{}, "extension failed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			l := NewLog(tc.ext, slog.New(slog.NewTextHandler(&logs, nil)))
			for i := 0; i < 2; i++ {
				if _, err := l.Record(attest.EventModel, digest32("m"), "m"); err != nil {
					t.Fatal(err)
				}
			}
			ok, status := l.Extended()
			if ok || !strings.Contains(status, tc.want) {
				t.Fatalf("Extended = %v, %q; want false, %q", ok, status, tc.want)
			}
			e := &attest.Evidence{TEE: attest.TEETDX}
			l.Apply(e)
			if e.RTMRExtended || len(e.EventLog) != 2 {
				t.Fatalf("Apply: %+v", e)
			}
			if name != "no extender" && !strings.Contains(logs.String(), "not extended") {
				t.Fatalf("no warning logged: %s", logs.String())
			}
		})
	}
}

type failingExtend struct {
	FakeExtender
	after int
	n     int
}

func (f *failingExtend) Extend(r int, d [48]byte) error {
	if f.n >= f.after {
		return errors.New("EPERM")
	}
	f.n++
	return f.FakeExtender.Extend(r, d)
}

func TestLogFailsClosedMidway(t *testing.T) {
	f := &failingExtend{after: 1}
	l := NewLog(f, nil)
	if _, err := l.Record(attest.EventModel, digest32("m"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(attest.EventConfig, digest32("c"), ""); err == nil {
		t.Fatal("a failed second extension was not reported")
	}
	if _, err := l.Record(attest.EventConfig, digest32("c"), ""); err == nil {
		t.Fatal("log kept recording after RTMR3 and log diverged")
	}
	if ok, _ := l.Extended(); ok {
		t.Fatal("diverged log claims extension")
	}
}
