package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tdxl/tdxl/backend"
	"github.com/tdxl/tdxl/kernels"
)

// The test binary doubles as the command: with TDXL_TEST_AS_MAIN=1 it runs
// main() (see init), so the drain test signals a real tdxl-backend process.
func init() {
	if os.Getenv("TDXL_TEST_AS_MAIN") == "1" {
		args := []string{os.Args[0]}
		for i, a := range os.Args {
			if a == "--" {
				args = append(args, os.Args[i+1:]...)
				break
			}
		}
		os.Args = args
		main()
	}
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestOptionsFlagsAndEnv(t *testing.T) {
	env := envFrom(map[string]string{
		"TDXL_LISTEN": ":6000", "TDXL_MODEL_DIR": "/models/sdxl", "TDXL_OUTPUT_DIR": "/out",
		"TDXL_THREADS": "3", "TDXL_QUEUE": "4", "TDXL_TIMEOUT": "90s", "TDXL_RETENTION_BYTES": "500MiB",
		"TDXL_TRUSTED_PROXIES": "10.0.0.0/8",
	})
	o, err := parseOptions([]string{"--listen", "127.0.0.1:7000", "--grace", "5s"}, env, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:7000", o.listen, "a flag wins over the environment")
	assert.Equal(t, "/models/sdxl", o.modelDir)
	assert.Equal(t, "/out", o.outputDir)
	assert.Equal(t, 3, o.threads)
	assert.Equal(t, 90*time.Second, o.timeout)
	assert.Equal(t, 5*time.Second, o.grace)
	cfg, err := o.config(nil)
	require.NoError(t, err)
	assert.Equal(t, 4, cfg.Queue)
	assert.EqualValues(t, 500<<20, cfg.RetentionBytes)
	require.Len(t, cfg.TrustedProxies, 1)
	assert.Equal(t, "10.0.0.0/8", cfg.TrustedProxies[0].String())

	o, err = parseOptions(nil, envFrom(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":5000", o.listen)
	assert.Equal(t, "/tmp/sd", o.outputDir)
	assert.Empty(t, o.modelDir)
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
		{nil, map[string]string{"TDXL_THREADS": "many"}, "$TDXL_THREADS"},
		{nil, map[string]string{"TDXL_GRACE": "soon"}, "$TDXL_GRACE"},
		{[]string{"--trusted-proxies", "nonsense"}, nil, "trusted proxy"},
		{[]string{"--retention-bytes", "lots"}, nil, "--retention-bytes"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--max-images", "0"}, nil, "--max-images"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--reserve", "512"}, nil, "--reserve"},
		{nil, map[string]string{"TDXL_RESERVE": "512x512,axb"}, "--reserve"},
		{[]string{"--reserve", "512x512x0"}, nil, "--reserve"},
	} {
		var stderr bytes.Buffer
		code := serve(context.Background(), c.args, envFrom(c.env), io.Discard, &stderr)
		assert.Equal(t, 2, code, "%v %v", c.args, c.env)
		assert.Contains(t, stderr.String(), c.want)
	}
}

func TestParseReserve(t *testing.T) {
	got, err := parseReserve("512x512, 1024x768x4")
	require.NoError(t, err)
	assert.Equal(t, []kernels.Size{{Width: 512, Height: 512, Batch: 1}, {Width: 1024, Height: 768, Batch: 4}}, got)
	got, err = parseReserve("")
	require.NoError(t, err)
	assert.Empty(t, got)
	for _, bad := range []string{"512", "512x", "x512", "512x512x4x1", "-8x8", "8x8x-1"} {
		_, err := parseReserve(bad)
		assert.Error(t, err, bad)
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 0, serve(context.Background(), []string{"--help"}, envFrom(nil), io.Discard, &stderr))
	help := stderr.String()
	for _, f := range []string{"listen", "model-dir", "output-dir", "threads", "queue", "max-images", "timeout",
		"grace", "trusted-proxies", "cache-dir", "retention-age", "retention-bytes", "log-level", "log-format", "model-name",
		"reserve"} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^\s+-`+f+`\b`), help)
	}
	for _, e := range []string{"TDXL_LISTEN", "TDXL_MODEL_DIR", "TDXL_OUTPUT_DIR"} {
		assert.Contains(t, help, "$"+e)
	}
	assert.Contains(t, help, "synth")
}

func TestBadModelDirExits1(t *testing.T) {
	var stderr bytes.Buffer
	code := serve(context.Background(), []string{"--listen", "127.0.0.1:0", "--model-dir", t.TempDir(),
		"--output-dir", t.TempDir()}, envFrom(nil), io.Discard, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "loading model")
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for a subprocess's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func metricValue(t *testing.T, base, name string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSIGTERMDrain runs tdxl-backend as a process on the tiny model, sends
// SIGTERM while one request runs and one waits: the running one completes
// with 200, the waiting one gets 503, new connections are refused, and the
// process exits 0 within the grace period.
func TestSIGTERMDrain(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	addr := freeAddr(t)
	base := "http://" + addr
	cmd := exec.Command(exe, "-test.run=^$", "--", "--listen", addr, "--model-dir", tinyDir,
		"--output-dir", t.TempDir(), "--grace", "60s", "--sizes", "64x64,128x128")
	cmd.Env = append(os.Environ(), "TDXL_TEST_AS_MAIN=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	waitFor(t, "readiness", 60*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	type result struct {
		status int
		body   []byte
	}
	post := func(body string, c chan<- result) {
		resp, err := http.Post(base+"/api/text2image", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			c <- result{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		c <- result{resp.StatusCode, b}
	}
	running, queued := make(chan result, 1), make(chan result, 1)
	go post(`{"prompt":"running","size":"128x128","step":50,"number":4}`, running)
	waitFor(t, "a running job", 10*time.Second, func() bool { return metricValue(t, base, "tdxl_jobs_running") == "1" })
	go post(`{"prompt":"queued","size":"64x64"}`, queued)
	waitFor(t, "a queued job", 10*time.Second, func() bool { return metricValue(t, base, "tdxl_queue_depth") == "1" })

	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	q := <-queued
	require.Equal(t, http.StatusServiceUnavailable, q.status, "%s", q.body)
	var eb backend.ErrorBody
	require.NoError(t, json.Unmarshal(q.body, &eb))
	assert.Equal(t, backend.CodeShuttingDown, eb.Error.Code)

	waitFor(t, "the listener to close", 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	r := <-running
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var resp backend.Response
	require.NoError(t, json.Unmarshal(r.body, &resp))
	assert.Len(t, resp.Output, 4)

	select {
	case err := <-exited:
		require.NoError(t, err, "exit status; output:\n%s", out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("process did not exit; output:\n%s", out.String())
	}
	assert.Less(t, time.Since(start), 60*time.Second)
	logs := out.String()
	assert.Contains(t, logs, "shutting down")
	assert.Contains(t, logs, "stopped")
	t.Logf("drained in %v", time.Since(start).Round(time.Millisecond))
}

// TestDefaultModelSynthesizedOnce: without --model-dir the tiny model is
// written into the cache dir once, then reused.
func TestDefaultModelSynthesizedOnce(t *testing.T) {
	cache := t.TempDir()
	l := &modelLoader{cacheDir: cache, env: envFrom(nil), log: discardLogger()}
	dir, err := l.defaultModel(context.Background())
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(cache, "models", "tiny-"+defaultModelVersion), dir)
	fi, err := os.Stat(filepath.Join(dir, "model_index.json"))
	require.NoError(t, err)
	dir2, err := l.defaultModel(context.Background())
	require.NoError(t, err)
	assert.Equal(t, dir, dir2)
	fi2, err := os.Stat(filepath.Join(dir, "model_index.json"))
	require.NoError(t, err)
	assert.Equal(t, fi.ModTime(), fi2.ModTime(), "not rewritten")

	l2 := &modelLoader{env: envFrom(map[string]string{"XDG_CACHE_HOME": "/xdg"}), log: discardLogger()}
	root, err := l2.cacheRoot()
	require.NoError(t, err)
	assert.Equal(t, "/xdg/tdxl", root)
	t.Setenv("HOME", "")
	l3 := &modelLoader{env: envFrom(nil), log: discardLogger()}
	root, err = l3.cacheRoot()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(os.TempDir(), fmt.Sprintf("tdxl-cache-%d", os.Getuid())), root)
}

func TestSubcommandsDispatch(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"synth", "--preset", "tiny", "--seed", "2", "--out", out}, &stdout, &stderr), stderr.String())
	_, err := os.Stat(filepath.Join(out, "unet", "config.json"))
	require.NoError(t, err)
	stderr.Reset()
	assert.NotEqual(t, 0, run(context.Background(), []string{"bench", "--no-such-flag"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "tdxl-backend bench")
}
