package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway/envelope"
)

// quoteIssuer is a stand-in TEE for HTTP-level tests: its "quote" is a
// marker followed by the 64 REPORTDATA bytes, so tests can read the binding
// back. (The simulated TDX TEE with real quotes is used in simulated_test.go.)
type quoteIssuer struct {
	tee   attest.TEE
	count atomic.Int64
	delay time.Duration
}

var quoteMarker = []byte("TEST-QUOTE:")

func (q *quoteIssuer) TEE() attest.TEE { return q.tee }

func (q *quoteIssuer) Issue(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	q.count.Add(1)
	if q.delay > 0 {
		select {
		case <-time.After(q.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ev := &attest.Evidence{Version: attest.Version, TEE: q.tee, Time: time.Now().UTC()}
	if q.tee == attest.TEENone {
		ev.Unattested = true
	} else {
		ev.Quote = append(append([]byte(nil), quoteMarker...), rd[:]...)
	}
	return ev, nil
}

func reportDataOf(t *testing.T, ev *attest.Evidence) []byte {
	t.Helper()
	if !bytes.HasPrefix(ev.Quote, quoteMarker) || len(ev.Quote) != len(quoteMarker)+64 {
		t.Fatalf("not a test quote: %x", ev.Quote)
	}
	return ev.Quote[len(quoteMarker):]
}

// fakeBackend mimics tdxl-backend's generation API closely enough for the
// gateway: /api/text2image (url or b64_json), /images/..., /readyz, /echo.
type fakeBackend struct {
	*httptest.Server
	mu      sync.Mutex
	images  map[string][]byte
	jobs    map[string][]byte // async jobs: id -> final body
	lastReq http.Header
	ready   atomic.Bool
}

func newFakeBackend(t *testing.T) *fakeBackend { return newFakeBackendTB(t) }

func newFakeBackendTB(t testing.TB) *fakeBackend {
	b := &fakeBackend{images: map[string][]byte{}, jobs: map[string][]byte{}}
	b.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !b.ready.Load() {
			http.Error(w, `{"status":"loading"}`, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			http.Error(w, "unexpected query", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "# TYPE fake_backend_requests_total counter\nfake_backend_requests_total 1\n")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.lastReq = r.Header.Clone()
		b.mu.Unlock()
		w.Header().Set("Tdxl-Receipt", "forged-by-backend")
		json.NewEncoder(w).Encode(map[string]any{"len": len(body), "xfh": r.Header.Get("X-Forwarded-Host"),
			"xfp": r.Header.Get("X-Forwarded-Proto"), "host": r.Host, "xff": r.Header.Get("X-Forwarded-For")})
	})
	mux.HandleFunc("/images/", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		img, ok := b.images[r.URL.Path]
		b.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(img)
	})
	gen := func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt         string `json:"prompt"`
			Number         int    `json:"number"`
			ResponseFormat string `json:"response_format"`
			Fail           bool   `json:"fail"`
			Async          bool   `json:"async"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Prompt == "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","error":{"code":"missing_prompt","message":"prompt is required"}}`)
			return
		}
		if req.Number == 0 {
			req.Number = 1
		}
		id := fmt.Sprintf("%x", sha256.Sum256([]byte(req.Prompt)))[:16]
		type out struct {
			B64JSON        string  `json:"b64_json,omitempty"`
			LatencySeconds float64 `json:"latencySeconds"`
			URL            string  `json:"url,omitempty"`
		}
		var outs []out
		for i := 0; i < req.Number; i++ {
			png := []byte(fmt.Sprintf("\x89PNG fake image %d of %q", i, req.Prompt))
			if req.ResponseFormat == "b64_json" {
				outs = append(outs, out{B64JSON: base64.StdEncoding.EncodeToString(png), LatencySeconds: 0.5})
				continue
			}
			path := fmt.Sprintf("/images/%s/%d_0.png", id, i)
			b.mu.Lock()
			b.images[path] = png
			b.mu.Unlock()
			if req.Fail {
				path = "/images/missing/0_0.png"
			}
			outs = append(outs, out{URL: r.Header.Get("X-Forwarded-Proto") + "://" + r.Header.Get("X-Forwarded-Host") + path, LatencySeconds: 0.5})
		}
		resp := map[string]any{"id": id, "output": outs, "status": "success",
			"meta": map[string]any{"input": map[string]any{"prompt": req.Prompt, "number": req.Number}}}
		if req.Number > 1 && req.ResponseFormat != "b64_json" {
			grid := "/images/" + id + "/image_grid.png"
			b.mu.Lock()
			b.images[grid] = []byte("\x89PNG grid of " + req.Prompt)
			b.mu.Unlock()
			resp["gridUrl"] = r.Header.Get("X-Forwarded-Proto") + "://" + r.Header.Get("X-Forwarded-Host") + grid
		}
		w.Header().Set("Content-Type", "application/json")
		if req.Async { // the job is done at once; its status is served by GET /api/text2image/{id}
			final, _ := json.Marshal(resp)
			b.mu.Lock()
			b.jobs[id] = final
			b.mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"id":%q,"status":"queued","progress":{"steps_done":0,"steps_total":4}}`, id)
			return
		}
		json.NewEncoder(w).Encode(resp)
	}
	mux.HandleFunc("POST /api/text2image", gen)
	mux.HandleFunc("GET /api/text2image/{id}", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		final, ok := b.jobs[r.PathValue("id")]
		b.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"status":"error","error":{"code":"not_found","message":"no such job"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(final)
	})
	mux.HandleFunc("POST /v1/images/generations", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"created":1,"data":[{"b64_json":%q},{"b64_json":%q}]}`,
			base64.StdEncoding.EncodeToString([]byte("openai png 0")), base64.StdEncoding.EncodeToString([]byte("openai png 1")))
	})
	b.Server = httptest.NewServer(mux)
	t.Cleanup(b.Close)
	return b
}

func (b *fakeBackend) image(path string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.images[path]
}

// openEvidence fetches the evidence over resp's connection and opens it
// with the certificate that connection presented.
func getEvidence(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func mustOpen(t *testing.T, resp *http.Response, body []byte) *attest.Evidence {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != envelope.MediaType {
		t.Fatalf("content type %q", ct)
	}
	ev, err := envelope.OpenEvidence(body, resp.TLS.PeerCertificates[0].PublicKey)
	if err != nil {
		t.Fatalf("opening evidence with the served certificate's key: %v", err)
	}
	return ev
}
