package verifier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

type flakyGetter struct {
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *flakyGetter) Get(u string) (map[string][]string, []byte, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, nil, fmt.Errorf("%w: network down", ErrCollateralUnavailable)
	}
	return map[string][]string{pcs.TcbInfoIssuerChainPhrase: {"chain"}, "X-Other": {"dropped"}}, []byte("body of " + u), nil
}

func TestCacheGetterFetchFirstThenFallBackWithinStaleness(t *testing.T) {
	dir := t.TempDir()
	next := &flakyGetter{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &cacheGetter{dir: dir, maxStale: time.Hour, next: next, now: func() time.Time { return now }}
	u := pcs.TcbInfoURL("00806f050000")
	if _, b, err := c.Get(u); err != nil || string(b) != "body of "+u {
		t.Fatalf("first fetch: %v %q", err, b)
	}
	next.fail.Store(true)
	now = now.Add(30 * time.Minute)
	h, b, err := c.Get(u)
	if err != nil || string(b) != "body of "+u || h[pcs.TcbInfoIssuerChainPhrase][0] != "chain" || h["X-Other"] != nil {
		t.Fatalf("cached answer within staleness: %v %q %v", err, b, h)
	}
	now = now.Add(time.Hour)
	if _, _, err := c.Get(u); !errors.Is(err, ErrCollateralUnavailable) || !strings.Contains(err.Error(), "cached copy is") {
		t.Fatalf("stale cache must not answer: %v", err)
	}
	// Fetch first: a working network refreshes the cache even when a copy exists.
	next.fail.Store(false)
	before := next.calls.Load()
	c.Get(u)
	if next.calls.Load() != before+1 {
		t.Fatal("cache answered without trying the network")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("cache files %v (no temporary files may remain)", files)
	}
}

func TestPCCSRewrite(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		if strings.HasSuffix(r.URL.Path, "/rootcacrl") {
			fmt.Fprint(w, "0a0b0c")
			return
		}
		if strings.Contains(r.URL.Path, "missing") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Tcb-Info-Issuer-Chain", "x")
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	g := NewCollateralGetter(CollateralOptions{PCCS: srv.URL + "/"})
	if h, b, err := g.Get(pcs.TcbInfoURL("00806f050000")); err != nil || string(b) != "ok" || len(h["Tcb-Info-Issuer-Chain"]) != 1 {
		t.Fatalf("tcb info via PCCS: %v %q", err, b)
	}
	if _, b, err := g.Get("https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"); err != nil || string(b) != "\x0a\x0b\x0c" {
		t.Fatalf("root CRL via PCCS (hex decoded): %v %x", err, b)
	}
	if _, _, err := g.Get(IntelPCS + "/missing"); !errors.Is(err, ErrCollateralUnavailable) {
		t.Fatalf("404: %v", err)
	}
	if paths[0] != "/tdx/certification/v4/tcb?fmspc=00806f050000" || paths[1] != "/sgx/certification/v4/rootcacrl" {
		t.Fatalf("PCCS paths %v", paths)
	}
}

func TestCheckRetry(t *testing.T) {
	post := context.WithValue(context.Background(), methodKey{}, http.MethodPost)
	get := context.WithValue(context.Background(), methodKey{}, http.MethodGet)
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}
	pinErr := &FactorError{Factor: "pin", Reason: ErrPinned}
	cases := []struct {
		name string
		ctx  context.Context
		resp *http.Response
		err  error
		want bool
	}{
		{"POST never sent (dial refused)", post, nil, dialErr, true},
		{"POST maybe sent (reset)", post, nil, readErr, false},
		{"POST got 503", post, &http.Response{StatusCode: 503, Header: http.Header{}}, nil, false},
		{"POST pin failure", post, nil, pinErr, false},
		{"GET reset", get, nil, readErr, true},
		{"GET 503", get, &http.Response{StatusCode: 503, Header: http.Header{}}, nil, true},
		{"GET pin failure", get, nil, fmt.Errorf("Get x: %w", pinErr), false},
		{"GET 200", get, &http.Response{StatusCode: 200, Header: http.Header{}}, nil, false},
	}
	for _, c := range cases {
		got, _ := checkRetry(c.ctx, c.resp, c.err)
		if got != c.want {
			t.Errorf("%s: retry=%v, want %v", c.name, got, c.want)
		}
	}
}

// A POST to a port where nothing listens yet is retried (it cannot have been sent) and
// succeeds once the server is up.
func TestPinnedClientRetriesUnsentPost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cert, _ := selfSigned(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "done") }))
	srv.TLS = nil
	var dials atomic.Int64
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if dials.Add(1) == 2 {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, err
			}
			srv.Listener = l
			srv.TLS = tlsConfigFor(cert)
			srv.StartTLS()
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	t.Cleanup(func() {
		if srv.Listener != nil {
			srv.Close()
		}
	})
	c := NewPinnedClient(spkiHash(mustParse(t, cert.Certificate[0])), "", dial)
	resp, err := c.Post("https://"+addr+"/", "text/plain", strings.NewReader("prompt"))
	if err != nil {
		t.Fatalf("POST after a refused dial: %v", err)
	}
	resp.Body.Close()
	if dials.Load() < 2 {
		t.Fatalf("%d dials", dials.Load())
	}
}

func TestBundleFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o644)
	if _, err := LoadBundle(bad); !errors.Is(err, ErrEvidenceMalformed) {
		t.Fatalf("bad bundle: %v", err)
	}
	os.WriteFile(bad, []byte(`{"version": 99}`), 0o644)
	if _, err := LoadBundle(bad); !errors.Is(err, ErrEvidenceMalformed) || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("future bundle: %v", err)
	}
	if _, err := LoadBundle(filepath.Join(dir, "none.json")); err == nil {
		t.Fatal("missing bundle accepted")
	}
}
