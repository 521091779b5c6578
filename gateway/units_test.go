package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"io/fs"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
)

func TestRateLimiterRefills(t *testing.T) {
	l := newRateLimiter(2, 2) // 2 tokens/s, burst 2
	t0 := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		if ok, _ := l.allow("a", t0); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, retry := l.allow("a", t0)
	if ok || retry <= 0 || retry > 500*time.Millisecond {
		t.Fatalf("third request: ok=%v retry=%v", ok, retry)
	}
	if ok, _ := l.allow("b", t0); !ok {
		t.Fatal("another client is limited by the first")
	}
	if ok, _ := l.allow("a", t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("not refilled after 0.5 s at 2/s")
	}
	if ok, _ := l.allow("a", t0.Add(500*time.Millisecond)); ok {
		t.Fatal("refilled more than one token")
	}
	l.prune(t0.Add(time.Hour))
	if len(l.buckets) != 0 {
		t.Fatalf("%d idle buckets kept", len(l.buckets))
	}
}

func TestMemStorage(t *testing.T) {
	ctx := context.Background()
	m := newMemStorage()
	m.Store(ctx, "certificates/ca/a.example/a.example.crt", []byte("crt"))
	m.Store(ctx, "certificates/ca/a.example/a.example.key", []byte("key"))
	m.Store(ctx, "acme/ca/users/x.json", []byte("{}"))
	if b, err := m.Load(ctx, "certificates/ca/a.example/a.example.key"); err != nil || string(b) != "key" {
		t.Fatalf("Load: %q %v", b, err)
	}
	if _, err := m.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load missing: %v", err)
	}
	if !m.Exists(ctx, "certificates/ca") || m.Exists(ctx, "certificates/c") {
		t.Fatal("Exists on directories")
	}
	got, _ := m.List(ctx, "certificates", false)
	if !reflect.DeepEqual(got, []string{"certificates/ca"}) {
		t.Fatalf("List non-recursive: %v", got)
	}
	got, _ = m.List(ctx, "certificates", true)
	want := []string{"certificates/ca", "certificates/ca/a.example", "certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List recursive: %v", got)
	}
	if ki, err := m.Stat(ctx, "certificates/ca"); err != nil || ki.IsTerminal {
		t.Fatalf("Stat dir: %+v %v", ki, err)
	}
	m.Delete(ctx, "certificates/ca")
	if m.Exists(ctx, "certificates") || !m.Exists(ctx, "acme/ca/users/x.json") {
		t.Fatal("Delete of a prefix")
	}
	// Lock excludes, Unlock releases, a cancelled wait returns.
	if err := m.Lock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := m.Lock(short, "issue"); err == nil {
		t.Fatal("second Lock did not wait")
	}
	got2 := make(chan error, 1)
	go func() { got2 <- m.Lock(ctx, "issue") }()
	time.Sleep(10 * time.Millisecond)
	if err := m.Unlock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	if err := <-got2; err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(ctx, "other"); err == nil {
		t.Fatal("unlocking an unheld lock")
	}
}

func TestParseBackend(t *testing.T) {
	for in, ok := range map[string]bool{
		"http://127.0.0.1:5000": true, "unix:/run/tdxl/backend.sock": true, "https://[::1]:5000/": true,
		"": false, "unix:": false, "ftp://x": false, "http://": false, "http://h:1/api": false, "127.0.0.1:5000": false,
	} {
		_, err := parseBackend(in)
		if (err == nil) != ok {
			t.Errorf("%q: err %v", in, err)
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%q: %v does not wrap ErrConfig", in, err)
		}
	}
}

// slowIssuer counts quotes, takes a while, and fails when told.
type slowIssuer struct {
	n    atomic.Int64
	fail error
}

func (s *slowIssuer) TEE() attest.TEE { return attest.TEETDX }
func (s *slowIssuer) Issue(_ context.Context, rd [64]byte) (*attest.Evidence, error) {
	s.n.Add(1)
	time.Sleep(50 * time.Millisecond)
	if s.fail != nil {
		return nil, s.fail
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEETDX, Quote: rd[:], Time: time.Now()}, nil
}

// Concurrent first requests for a certificate share one quote and its
// outcome, success or failure.
func TestCachedEvidenceSingleFlight(t *testing.T) {
	for _, fail := range []error{nil, errors.New("quoting service down")} {
		iss := &slowIssuer{fail: fail}
		cfg := (&Config{Issuer: iss, Backend: "http://127.0.0.1:1"}).withDefaults()
		s := newEvidenceService(&cfg, func() Runtime { return Runtime{} }, newMetrics())
		src := &selfSigned{names: []string{"x"}, validity: time.Hour,
			evidence: func(context.Context, crypto.Signer) ([]byte, error) { return nil, nil },
			adopt:    func(*tls.Certificate, []byte) {}}
		if err := src.rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.cached(context.Background(), src.cert)
			}()
		}
		wg.Wait()
		if n := iss.n.Load(); n != 1 {
			t.Fatalf("fail=%v: %d quotes for one certificate, want 1", fail, n)
		}
		for i, err := range errs {
			if (err != nil) != (fail != nil) || (fail != nil && !errors.Is(err, fail)) {
				t.Fatalf("caller %d: %v, want %v", i, err, fail)
			}
		}
	}
}
