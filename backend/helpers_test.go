package backend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testEngine is the test double used where a test tests HTTP behaviour; it
// paints a flat colour derived from the seed. Image-producing paths are
// covered end to end with the real core in cmd/tdxl-backend.
type testEngine struct {
	calls     atomic.Int64
	cancelled atomic.Int64
	started   chan struct{} // receives once per Generate call (if not nil)
	block     chan struct{} // Generate waits for it to be closed (or ctx) if not nil
	fail      error
	stepDelay time.Duration
	mu        sync.Mutex
	seeds     []int64
}

func (e *testEngine) Info() EngineInfo {
	return EngineInfo{Model: "test/fake", ISA: "none", Threads: 1}
}

func (e *testEngine) Generate(ctx context.Context, req EngineRequest) (*EngineResult, error) {
	e.calls.Add(1)
	e.mu.Lock()
	e.seeds = append(e.seeds, req.Seed)
	e.mu.Unlock()
	if e.started != nil {
		e.started <- struct{}{}
	}
	if e.block != nil {
		select {
		case <-e.block:
		case <-ctx.Done():
			e.cancelled.Add(1)
			return nil, ctx.Err()
		}
	}
	res := &EngineResult{}
	for i := 0; i < req.Steps; i++ {
		if e.stepDelay > 0 {
			select {
			case <-time.After(e.stepDelay):
			case <-ctx.Done():
				e.cancelled.Add(1)
				return nil, ctx.Err()
			}
		}
		res.StepTimes = append(res.StepTimes, e.stepDelay)
		if req.Progress != nil {
			req.Progress(i+1, req.Steps)
		}
	}
	if e.fail != nil {
		return nil, e.fail
	}
	for b := 0; b < req.Batch; b++ {
		img := image.NewRGBA(image.Rect(0, 0, req.Width, req.Height))
		c := color.RGBA{R: uint8(req.Seed), G: uint8(req.Seed >> 8), B: uint8(b), A: 255}
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
		res.Images = append(res.Images, img)
	}
	return res, nil
}

// testServer is a Server serving on a loopback port.
type testServer struct {
	*Server
	URL    string
	cancel context.CancelFunc
	done   chan error
}

func quietLogger() *slog.Logger {
	if os.Getenv("TDXL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startServer(t *testing.T, cfg Config, load Loader) *testServer {
	t.Helper()
	if cfg.OutputDir == "" {
		cfg.OutputDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := New(cfg, load)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, URL: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return ts
}

func startReady(t *testing.T, cfg Config, eng Engine) *testServer {
	t.Helper()
	ts := startServer(t, cfg, StaticLoader(eng))
	select {
	case <-ts.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("engine not loaded")
	}
	return ts
}

// stop shuts the server down and returns Serve's error.
func (ts *testServer) stop(t *testing.T) error {
	ts.cancel()
	select {
	case err := <-ts.done:
		ts.done <- err // for Cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
		return nil
	}
}

type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r httpResult) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

func (r httpResult) errCode(t *testing.T) string {
	t.Helper()
	var b ErrorBody
	require.NoError(t, json.Unmarshal(r.Body, &b), "body: %s", r.Body)
	require.Equal(t, "error", b.Status)
	require.NotEmpty(t, b.Error.Message)
	return b.Error.Code
}

func do(t *testing.T, ctx context.Context, method, url, contentType string, body []byte) (httpResult, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

// post sends body the way curl -d does (form content type).
func post(t *testing.T, url string, body string) httpResult {
	t.Helper()
	r, err := do(t, context.Background(), http.MethodPost, url, "application/x-www-form-urlencoded", []byte(body))
	require.NoError(t, err)
	return r
}

func get(t *testing.T, url string) httpResult {
	t.Helper()
	r, err := do(t, context.Background(), http.MethodGet, url, "", nil)
	require.NoError(t, err)
	return r
}

// storeEntries lists what is in the output folder.
func storeEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errBoom = errors.New("boom")

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
