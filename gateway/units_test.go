package gateway

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"testing"
	"time"
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
