package main

// End-to-end tests of the service on the REAL core (package kernels) with
// the tiny synthesized model: every image-producing path of the API.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tdxl/tdxl/backend"
	"github.com/tdxl/tdxl/kernels"
	"github.com/tdxl/tdxl/kernels/synth"
)

var (
	tinyDir string            // the tiny model, synthesized once for the package's tests
	tiny    *kernels.Pipeline // opened once
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "tdxl-backend-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	tinyDir = filepath.Join(tmp, "tiny")
	if err := synth.Write(context.Background(), tinyDir, synth.Options{Preset: "tiny", Seed: defaultModelSeed}); err != nil {
		fmt.Fprintln(os.Stderr, "synthesizing the tiny model:", err)
		return 1
	}
	if tiny, err = kernels.Open(tinyDir, kernels.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "opening the tiny model:", err)
		return 1
	}
	defer tiny.Close()
	return m.Run()
}

// small is the size the tests other than the seed's examples use: the
// reference core takes seconds for one tiny-model image at 512² and about a
// minute at 1024² on 2 cores, but milliseconds at 64².
const small = "64x64"

const panda = "A panda listening to music with headphones. highly detailed, 8k."

// The seed's two curl examples, verbatim.
var seedBodies = map[string]string{
	"512x512":   `{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", "number": 1}`,
	"1024x1024": `{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", "number": 1, "size": "1024x1024"}`,
}

// startService serves the real core on a loopback port.
func startService(t testing.TB, cfg backend.Config) string {
	t.Helper()
	if cfg.OutputDir == "" {
		cfg.OutputDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sizes == nil {
		// the seed's sizes plus a small one that keeps the other tests fast
		cfg.Sizes = append([]string{small}, backend.DefaultSizes...)
	}
	s, err := backend.New(cfg, backend.StaticLoader(pipelineEngine{p: tiny}))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Ready()
	return "http://" + ln.Addr().String()
}

// curlPost sends body as `curl -X POST URL -d BODY` does.
func curlPost(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "curl/7.88.1")
	req.Header.Set("Accept", "*/*")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func fetchPNG(t *testing.T, url string) ([]byte, image.Image) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return b, img
}

// sameShape checks that got has every key of want with the same JSON type,
// recursively (arrays: every element against want's first); it returns
// got's keys that want lacks (the additive fields), as dotted paths.
func sameShape(t *testing.T, path string, want, got any) (extra []string) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		require.True(t, ok, "%s: want an object, got %T", path, got)
		for k, wv := range w {
			gv, ok := g[k]
			require.True(t, ok, "%s.%s: missing", path, k)
			extra = append(extra, sameShape(t, path+"."+k, wv, gv)...)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				extra = append(extra, path+"."+k)
			}
		}
	case []any:
		g, ok := got.([]any)
		require.True(t, ok, "%s: want an array, got %T", path, got)
		require.NotEmpty(t, g, path)
		for i, gv := range g {
			extra = append(extra, sameShape(t, fmt.Sprintf("%s[%d]", path, i), w[0], gv)...)
		}
	default:
		require.IsType(t, want, got, path)
		if f, ok := want.(float64); ok && f == float64(int64(f)) && !strings.Contains(path, "Seconds") {
			gf := got.(float64)
			require.Equal(t, gf, float64(int64(gf)), "%s: want an integer", path)
		}
	}
	return extra
}

func TestSeedCurlExamples(t *testing.T) {
	raw, err := os.ReadFile("testdata/seed_sample_response.json")
	require.NoError(t, err)
	var sample map[string]any
	require.NoError(t, json.Unmarshal(raw, &sample))
	base := startService(t, backend.Config{})
	urlRe := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `/images/([0-9a-f-]{36})/0_0\.png$`)
	for size, body := range seedBodies {
		t.Run(size, func(t *testing.T) {
			status, b := curlPost(t, base+"/api/text2image", body)
			require.Equal(t, http.StatusOK, status, "%s", b)
			var got map[string]any
			require.NoError(t, json.Unmarshal(b, &got))
			extra := sameShape(t, "", sample, got)
			assert.ElementsMatch(t, []string{".meta.input.seed"}, extra, "only additive fields may be added")

			assert.Equal(t, "success", got["status"])
			in := got["meta"].(map[string]any)["input"].(map[string]any)
			assert.Equal(t, map[string]any{"batch": 1.0, "model": tiny.Info().Model, "number": 1.0, "prompt": panda,
				"size": size, "step": 4.0, "seed": in["seed"]}, in)
			id := got["id"].(string)
			out := got["output"].([]any)
			require.Len(t, out, 1)
			o := out[0].(map[string]any)
			m := urlRe.FindStringSubmatch(o["url"].(string))
			require.NotNil(t, m, o["url"])
			assert.Equal(t, id, m[1])
			lat := o["latencySeconds"].(float64)
			assert.Greater(t, lat, 0.0)
			assert.Equal(t, lat, got["generationTimeSeconds"])
			assert.Equal(t, lat, got["averageImageGenerationTimeSeconds"])

			_, img := fetchPNG(t, o["url"].(string))
			w, h := 512, 512
			if size == "1024x1024" {
				w, h = 1024, 1024
			}
			assert.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
		})
	}
}

func postOK(t *testing.T, url, body string) backend.Response {
	t.Helper()
	status, b := curlPost(t, url, body)
	require.Equal(t, http.StatusOK, status, "%s", b)
	var r backend.Response
	require.NoError(t, json.Unmarshal(b, &r))
	return r
}

func TestGridAndBatchNames(t *testing.T) {
	base := startService(t, backend.Config{})
	r := postOK(t, base+"/api/text2image", `{"prompt":"grid","number":2,"batch":2,"step":2,"seed":3,"size":"64x64"}`)
	require.Len(t, r.Output, 4)
	for i, name := range []string{"0_0", "0_1", "1_0", "1_1"} {
		assert.True(t, strings.HasSuffix(r.Output[i].URL, "/"+r.ID+"/"+name+".png"), r.Output[i].URL)
		_, img := fetchPNG(t, r.Output[i].URL)
		assert.Equal(t, image.Rect(0, 0, 64, 64), img.Bounds())
	}
	assert.Equal(t, r.Output[0].LatencySeconds, r.Output[1].LatencySeconds, "images of one batch share its latency")
	assert.InDelta(t, r.Output[0].LatencySeconds+r.Output[2].LatencySeconds, r.GenerationTimeSeconds, 1e-9)
	require.Equal(t, base+"/images/"+r.ID+"/image_grid.png", r.GridURL)
	_, grid := fetchPNG(t, r.GridURL)
	assert.Equal(t, image.Rect(0, 0, 128, 128), grid.Bounds())
	// the grid's tiles are the images, row by row
	_, first := fetchPNG(t, r.Output[0].URL)
	_, last := fetchPNG(t, r.Output[3].URL)
	assert.Equal(t, first.At(10, 20), grid.At(10, 20))
	assert.Equal(t, last.At(10, 20), grid.At(64+10, 64+20))
}

func TestSeedReproducibleAndB64JSON(t *testing.T) {
	base := startService(t, backend.Config{})
	body := `{"prompt":"a red fox","step":2,"seed":1234,"size":"64x64"}`
	a := postOK(t, base+"/api/text2image", body)
	b := postOK(t, base+"/api/text2image", body)
	assert.NotEqual(t, a.ID, b.ID)
	assert.EqualValues(t, 1234, a.Meta.Input.Seed)
	pa, _ := fetchPNG(t, a.Output[0].URL)
	pb, _ := fetchPNG(t, b.Output[0].URL)
	assert.Equal(t, pa, pb, "same seed and inputs must give identical PNG bytes")

	c := postOK(t, base+"/api/text2image", `{"prompt":"a red fox","step":2,"seed":1235,"size":"64x64"}`)
	pc, _ := fetchPNG(t, c.Output[0].URL)
	assert.NotEqual(t, pa, pc, "another seed gives another image")

	d := postOK(t, base+"/api/text2image", `{"prompt":"a red fox","step":2,"seed":1234,"size":"64x64","response_format":"b64_json"}`)
	require.Len(t, d.Output, 1)
	assert.Empty(t, d.Output[0].URL)
	pd, err := base64.StdEncoding.DecodeString(d.Output[0].B64JSON)
	require.NoError(t, err)
	assert.Equal(t, pa, pd, "b64_json carries the same PNG bytes")

	// a random seed is drawn and echoed when none is sent, and reproduces the image
	e := postOK(t, base+"/api/text2image", `{"prompt":"a red fox","step":2,"size":"64x64"}`)
	assert.Less(t, e.Meta.Input.Seed, int64(1)<<53)
	pe, _ := fetchPNG(t, e.Output[0].URL)
	f := postOK(t, base+"/api/text2image", fmt.Sprintf(`{"prompt":"a red fox","step":2,"size":"64x64","seed":%d}`, e.Meta.Input.Seed))
	pf, _ := fetchPNG(t, f.Output[0].URL)
	assert.Equal(t, pe, pf)
}

func TestOpenAIImagesEndpoint(t *testing.T) {
	base := startService(t, backend.Config{})
	for _, format := range []string{"url", "b64_json"} {
		t.Run(format, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, base+"/v1/images/generations",
				strings.NewReader(`{"model":"dall-e-3","prompt":"a lighthouse","n":2,"size":"64x64","response_format":"`+format+`","step":1}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer sk-ignored")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var out backend.OpenAIResponse
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			assert.InDelta(t, time.Now().Unix(), out.Created, 60)
			require.Len(t, out.Data, 2)
			for _, d := range out.Data {
				var b []byte
				if format == "url" {
					assert.Empty(t, d.B64JSON)
					b, _ = fetchPNG(t, d.URL)
				} else {
					assert.Empty(t, d.URL)
					b, err = base64.StdEncoding.DecodeString(d.B64JSON)
					require.NoError(t, err)
				}
				img, err := png.Decode(bytes.NewReader(b))
				require.NoError(t, err)
				assert.Equal(t, image.Rect(0, 0, 64, 64), img.Bounds())
			}
		})
	}
}

func TestAsyncWithProgress(t *testing.T) {
	base := startService(t, backend.Config{})
	status, b := curlPost(t, base+"/api/text2image", `{"prompt":"async panda","number":2,"step":25,"seed":5,"async":true,"size":"64x64"}`)
	require.Equal(t, http.StatusAccepted, status, "%s", b)
	var st backend.AsyncStatus
	require.NoError(t, json.Unmarshal(b, &st))
	assert.Equal(t, 50, st.Progress.Total)
	progress := map[int]bool{}
	var final backend.Response
	deadline := time.Now().Add(60 * time.Second)
	for {
		require.True(t, time.Now().Before(deadline), "async job did not finish")
		resp, err := http.Get(base + "/api/text2image/" + st.ID)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var s backend.AsyncStatus
		require.NoError(t, json.Unmarshal(body, &s))
		if s.Status == "success" {
			require.NoError(t, json.Unmarshal(body, &final))
			break
		}
		assert.Contains(t, []string{"queued", "running"}, s.Status)
		assert.LessOrEqual(t, s.Progress.Done, s.Progress.Total)
		progress[s.Progress.Done] = true
		time.Sleep(5 * time.Millisecond)
	}
	assert.Greater(t, len(progress), 1, "progress moved while we watched: %v", progress)
	assert.Equal(t, st.ID, final.ID)
	require.Len(t, final.Output, 2)
	assert.NotEmpty(t, final.GridURL)
	_, img := fetchPNG(t, final.Output[1].URL)
	assert.Equal(t, image.Rect(0, 0, 64, 64), img.Bounds())
	// the same body as a synchronous call with the same inputs (but the id and timings)
	sync := postOK(t, base+"/api/text2image", `{"prompt":"async panda","number":2,"step":25,"seed":5,"size":"64x64"}`)
	assert.Equal(t, sync.Meta, final.Meta)
	p1, _ := fetchPNG(t, sync.Output[1].URL)
	p2, _ := fetchPNG(t, final.Output[1].URL)
	assert.Equal(t, p1, p2)
}

// The core's per-pass limits are refused with 400 before queueing, never
// as a 500 from the engine.
func TestCoreLimitsAre400(t *testing.T) {
	base := startService(t, backend.Config{})
	status, b := curlPost(t, base+"/api/text2image", `{"prompt":"p","size":"1024x1024","batch":5}`)
	require.Equal(t, http.StatusBadRequest, status, "%s", b)
	var eb backend.ErrorBody
	require.NoError(t, json.Unmarshal(b, &eb))
	assert.Equal(t, backend.CodeInvalidBatch, eb.Error.Code)
}

// A client that goes away cancels the real core mid-generation, and the
// cancelled request leaves no files; the service keeps serving.
func TestDisconnectCancelsRealCore(t *testing.T) {
	dir := t.TempDir()
	base := startService(t, backend.Config{OutputDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/text2image",
		strings.NewReader(`{"prompt":"cancelled","size":"512x512","step":50,"number":4}`))
	require.NoError(t, err)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "the job to run", 10*time.Second, func() bool { return metricValue(t, base, "tdxl_jobs_running") == "1" })
	cancel()
	require.Error(t, <-errc)
	waitFor(t, "the core to stop", 30*time.Second, func() bool { return metricValue(t, base, "tdxl_jobs_running") == "0" })
	t.Logf("cancelled after %v", time.Since(start).Round(time.Millisecond))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents, "a cancelled request leaves no files")
	r := postOK(t, base+"/api/text2image", `{"prompt":"after","size":"64x64","step":1}`)
	assert.Len(t, r.Output, 1)
}
