package backend

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHTTPErrorClasses(t *testing.T) {
	dir := t.TempDir()
	ts := startReady(t, Config{OutputDir: dir, MaxImages: 4}, &testEngine{})
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not json", `prompt=panda`, 400, CodeInvalidJSON},
		{"missing prompt", `{"number":1}`, 400, CodeMissingPrompt},
		{"empty prompt", `{"prompt":""}`, 400, CodeMissingPrompt},
		{"bad size", `{"prompt":"p","size":"640x480"}`, 400, CodeInvalidSize},
		{"step 0", `{"prompt":"p","step":0}`, 400, CodeInvalidStep},
		{"step 51", `{"prompt":"p","step":51}`, 400, CodeInvalidStep},
		{"number 0", `{"prompt":"p","number":0}`, 400, CodeInvalidNumber},
		{"batch 0", `{"prompt":"p","batch":0}`, 400, CodeInvalidBatch},
		{"over configured cap", `{"prompt":"p","number":5}`, 400, CodeTooManyImages},
		{"wrong type", `{"prompt":"p","number":"2"}`, 400, CodeInvalidType},
		{"too large", `{"prompt":"` + strings.Repeat("a", 1<<20) + `"}`, 413, CodeBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, ts.URL+"/api/text2image", c.body)
			require.Equal(t, c.status, r.Status, "%s", r.Body)
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			assert.Equal(t, c.code, r.errCode(t))
		})
	}
	assert.Empty(t, storeEntries(t, dir), "failed requests must leave no files")
}

func TestBodyTooLargeChunked(t *testing.T) {
	ts := startReady(t, Config{}, &testEngine{})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"prompt":"`))
		for i := 0; i < 2048; i++ {
			if _, err := pw.Write([]byte(strings.Repeat("a", 1024))); err != nil {
				break
			}
		}
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/api/text2image", pr) // no Content-Length: chunked
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestRoutesAndMethods(t *testing.T) {
	ts := startReady(t, Config{}, &testEngine{})
	r := get(t, ts.URL+"/api/text2image")
	assert.Equal(t, http.StatusMethodNotAllowed, r.Status)
	assert.Equal(t, "POST", r.Header.Get("Allow"))
	assert.Equal(t, CodeMethodNotAllowed, r.errCode(t))
	r = get(t, ts.URL+"/nope")
	assert.Equal(t, http.StatusNotFound, r.Status)
	assert.Equal(t, CodeNotFound, r.errCode(t))
	r = get(t, ts.URL+"/healthz")
	assert.Equal(t, http.StatusOK, r.Status)
	r = get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "test/fake", r.json(t)["model"])
	r = get(t, ts.URL+"/openapi.yaml")
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, string(r.Body), "/v1/images/generations")
	assert.Len(t, r.Header.Get("X-Request-Id"), 16)
}

func TestNotReadyUntilLoaded(t *testing.T) {
	release := make(chan struct{})
	eng := &testEngine{}
	ts := startServer(t, Config{}, func(ctx context.Context) (Engine, error) {
		select {
		case <-release:
			return eng, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	assert.Equal(t, http.StatusOK, get(t, ts.URL+"/healthz").Status)
	r := get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Equal(t, CodeNotReady, r.errCode(t))
	r = post(t, ts.URL+"/api/text2image", `{"prompt":"p"}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Equal(t, CodeNotReady, r.errCode(t))
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	close(release)
	<-ts.Ready()
	assert.Equal(t, http.StatusOK, get(t, ts.URL+"/readyz").Status)
	assert.Equal(t, http.StatusOK, post(t, ts.URL+"/api/text2image", `{"prompt":"p"}`).Status)
}

func TestLoadFailureStopsServe(t *testing.T) {
	ts := startServer(t, Config{}, func(context.Context) (Engine, error) { return nil, errBoom })
	select {
	case err := <-ts.done:
		ts.done <- err
		require.ErrorIs(t, err, errBoom)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after a load failure")
	}
}

func TestEngineFailureIs500AndLeavesNoFiles(t *testing.T) {
	dir := t.TempDir()
	ts := startReady(t, Config{OutputDir: dir}, &testEngine{fail: errBoom})
	r := post(t, ts.URL+"/api/text2image", `{"prompt":"p","number":2}`)
	require.Equal(t, http.StatusInternalServerError, r.Status)
	var b ErrorBody
	require.NoError(t, json.Unmarshal(r.Body, &b))
	assert.Equal(t, CodeEngineError, b.Error.Code)
	assert.True(t, validID(b.ID), "the failed job's id is returned: %q", b.ID)
	assert.Contains(t, b.Error.Message, b.ID)
	assert.Empty(t, storeEntries(t, dir))
}

func TestQueueFullIs429(t *testing.T) {
	eng := &testEngine{block: make(chan struct{}), started: make(chan struct{}, 8)}
	ts := startReady(t, Config{Queue: 1}, eng)
	results := make(chan httpResult, 2)
	go func() { results <- post(t, ts.URL+"/api/text2image", `{"prompt":"running"}`) }()
	<-eng.started
	go func() { results <- post(t, ts.URL+"/api/text2image", `{"prompt":"waiting"}`) }()
	eventually(t, "one queued job", func() bool { return ts.queue.len() == 1 })
	r := post(t, ts.URL+"/api/text2image", `{"prompt":"refused"}`)
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	assert.Equal(t, CodeQueueFull, r.errCode(t))
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, ra, 1)
	metrics := string(get(t, ts.URL+"/metrics").Body)
	assert.Contains(t, metrics, "tdxl_queue_depth 1")
	assert.Contains(t, metrics, `tdxl_http_requests_total{code="429",route="text2image"} 1`)
	close(eng.block)
	for i := 0; i < 2; i++ {
		assert.Equal(t, http.StatusOK, (<-results).Status)
	}
	assert.EqualValues(t, 2, eng.calls.Load())
}

func TestDisconnectCancelsRunningJob(t *testing.T) {
	dir := t.TempDir()
	eng := &testEngine{block: make(chan struct{}), started: make(chan struct{}, 1)}
	ts := startReady(t, Config{OutputDir: dir}, eng)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := do(t, ctx, http.MethodPost, ts.URL+"/api/text2image", "", []byte(`{"prompt":"p"}`))
		errc <- err
	}()
	<-eng.started
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	eventually(t, "engine cancellation", func() bool { return eng.cancelled.Load() == 1 })
	assert.Empty(t, storeEntries(t, dir))
}

func TestDisconnectRemovesQueuedJob(t *testing.T) {
	eng := &testEngine{block: make(chan struct{}), started: make(chan struct{}, 4)}
	ts := startReady(t, Config{}, eng)
	first := make(chan httpResult, 1)
	go func() { first <- post(t, ts.URL+"/api/text2image", `{"prompt":"first"}`) }()
	<-eng.started
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := do(t, ctx, http.MethodPost, ts.URL+"/api/text2image", "", []byte(`{"prompt":"second"}`))
		errc <- err
	}()
	eventually(t, "second job queued", func() bool { return ts.queue.len() == 1 })
	cancel()
	require.Error(t, <-errc)
	eventually(t, "queued job removed", func() bool { return ts.queue.len() == 0 })
	close(eng.block)
	assert.Equal(t, http.StatusOK, (<-first).Status)
	time.Sleep(50 * time.Millisecond)
	assert.EqualValues(t, 1, eng.calls.Load(), "the cancelled queued job must never reach the engine")
}

func TestTimeoutIs504(t *testing.T) {
	eng := &testEngine{block: make(chan struct{})}
	defer close(eng.block)
	ts := startReady(t, Config{Timeout: 100 * time.Millisecond}, eng)
	r := post(t, ts.URL+"/api/text2image", `{"prompt":"p"}`)
	require.Equal(t, http.StatusGatewayTimeout, r.Status)
	assert.Equal(t, CodeTimeout, r.errCode(t))
	assert.EqualValues(t, 1, eng.cancelled.Load())
}

func TestDrainFinishesRunningAndRefusesQueued(t *testing.T) {
	eng := &testEngine{block: make(chan struct{}), started: make(chan struct{}, 4)}
	ts := startReady(t, Config{Grace: 5 * time.Second}, eng)
	running := make(chan httpResult, 1)
	go func() { running <- post(t, ts.URL+"/api/text2image", `{"prompt":"running"}`) }()
	<-eng.started
	queued := make(chan httpResult, 1)
	go func() { queued <- post(t, ts.URL+"/api/text2image", `{"prompt":"queued"}`) }()
	eventually(t, "queued", func() bool { return ts.queue.len() == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop(t) }()
	q := <-queued
	assert.Equal(t, http.StatusServiceUnavailable, q.Status)
	assert.Equal(t, CodeShuttingDown, q.errCode(t))
	select {
	case <-stopped:
		t.Fatal("server stopped before its running job finished")
	case <-time.After(100 * time.Millisecond):
	}
	close(eng.block)
	assert.Equal(t, http.StatusOK, (<-running).Status)
	require.NoError(t, <-stopped)
	assert.EqualValues(t, 1, eng.calls.Load())
}

func TestDrainCancelsAfterGrace(t *testing.T) {
	eng := &testEngine{block: make(chan struct{}), started: make(chan struct{}, 1)}
	defer close(eng.block)
	ts := startReady(t, Config{Grace: 200 * time.Millisecond}, eng)
	running := make(chan httpResult, 1)
	go func() {
		r, _ := do(t, context.Background(), http.MethodPost, ts.URL+"/api/text2image", "", []byte(`{"prompt":"p"}`))
		running <- r
	}()
	<-eng.started
	start := time.Now()
	require.NoError(t, ts.stop(t))
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.EqualValues(t, 1, eng.cancelled.Load())
	r := <-running
	if r.Status != 0 { // the connection may be closed before the answer
		assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	}
}

func TestForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		name    string
		trusted string
		want    string
	}{
		{"trusted loopback", "127.0.0.0/8", "https://gw.example:8443/images/"},
		{"untrusted", "10.0.0.0/8", "http://127.0.0.1:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePrefixes(c.trusted)
			require.NoError(t, err)
			ts := startReady(t, Config{TrustedProxies: p}, &testEngine{})
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/api/text2image", strings.NewReader(`{"prompt":"p"}`))
			require.NoError(t, err)
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-Host", "gw.example:8443, inner")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body Response
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			require.Len(t, body.Output, 1)
			assert.True(t, strings.HasPrefix(body.Output[0].URL, c.want), body.Output[0].URL)
		})
	}
}

func TestBaseURLRefusesInjectedHost(t *testing.T) {
	assert.False(t, validHost("evil.example/path"))
	assert.False(t, validHost("a@b"))
	assert.True(t, validHost("[::1]:5000"))
}

// The body read deadline must not cut a generation that outlasts it (net/http
// cancels a request's context when a read deadline passes).
func TestBodyDeadlineDoesNotCancelLongJobs(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 50 * time.Millisecond
	defer func() { bodyReadTimeout = old }()
	eng := &testEngine{stepDelay: 100 * time.Millisecond}
	ts := startReady(t, Config{}, eng)
	r := post(t, ts.URL+"/api/text2image", `{"prompt":"p","step":3}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.Zero(t, eng.cancelled.Load())
}

type limitedEngine struct{ testEngine }

func (e *limitedEngine) Info() EngineInfo {
	return EngineInfo{Model: "limited", MaxBatch: 8, MaxBatchPixels: 2 * 1024 * 1024}
}

func TestEngineLimitsRefusedBeforeQueueing(t *testing.T) {
	eng := &limitedEngine{}
	ts := startReady(t, Config{}, eng)
	r := post(t, ts.URL+"/api/text2image", `{"prompt":"p","size":"1024x1024","batch":3}`)
	require.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, CodeInvalidBatch, r.errCode(t))
	assert.Contains(t, string(r.Body), "at most 2 images")
	r = post(t, ts.URL+"/api/text2image", `{"prompt":"p","batch":9}`)
	require.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, CodeInvalidBatch, r.errCode(t))
	assert.Zero(t, eng.calls.Load())
	assert.Equal(t, http.StatusOK, post(t, ts.URL+"/api/text2image", `{"prompt":"p","size":"1024x1024","batch":2}`).Status)
}
