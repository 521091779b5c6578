package backend

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func decodeResponse(t *testing.T, r httpResult) Response {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var resp Response
	require.NoError(t, json.Unmarshal(r.Body, &resp))
	return resp
}

// rawGet sends a request line verbatim, so that no client cleans the path.
func rawGet(t *testing.T, base, path string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestImageServingAndTraversal(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.png")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o644))
	ts := startReady(t, Config{OutputDir: dir}, &testEngine{})
	resp := decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p","number":2}`))
	id := resp.ID

	r := get(t, resp.Output[1].URL)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "image/png", r.Header.Get("Content-Type"))
	_, err := png.Decode(bytes.NewReader(r.Body))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, get(t, resp.GridURL).Status)

	// a directory holding a PNG-named folder must not be listed or served
	require.NoError(t, os.Mkdir(filepath.Join(dir, id, "9_9.png"), 0o755))
	for _, p := range []string{
		"/images/" + id + "/../secret.png",
		"/images/" + id + "/..%2fsecret.png",
		"/images/" + id + "/%2e%2e/secret.png",
		"/images/%2e%2e/secret.png",
		"/images/..%2F..%2Fetc%2Fpasswd/x.png",
		"/images/" + id + "/0_0.png/",
		"/images/" + id + "/",
		"/images/" + id,
		"/images/" + id + "/meta.json",
		"/images/" + id + "/9_9.png",
		"/images/" + id + "/0_0%2epng",
		"/images/" + strings.ToUpper(id) + "/0_0.png",
		"/images/" + uuid.NewString() + "/0_0.png",
		"/images/../../etc/passwd",
		"/images/" + id + "/..\\secret.png",
		"/images/" + id + "/0_0.png/..",
		"/images//0_0.png",
	} {
		assert.Equal(t, http.StatusNotFound, rawGet(t, ts.URL, p), p)
	}
	assert.Equal(t, http.StatusOK, rawGet(t, ts.URL, "/images/"+id+"/0_0.png"))
}

func TestB64JSONStoresNothing(t *testing.T) {
	dir := t.TempDir()
	ts := startReady(t, Config{OutputDir: dir}, &testEngine{})
	resp := decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p","number":2,"response_format":"b64_json"}`))
	require.Len(t, resp.Output, 2)
	for _, o := range resp.Output {
		assert.Empty(t, o.URL)
		b, err := base64.StdEncoding.DecodeString(o.B64JSON)
		require.NoError(t, err)
		_, err = png.Decode(bytes.NewReader(b))
		require.NoError(t, err)
	}
	assert.NotEmpty(t, resp.GridB64JSON)
	assert.Empty(t, resp.GridURL)
	assert.Empty(t, storeEntries(t, dir))
}

func TestAsyncProgressWithTestEngine(t *testing.T) {
	eng := &testEngine{stepDelay: 30 * time.Millisecond}
	ts := startReady(t, Config{}, eng)
	r := post(t, ts.URL+"/api/text2image", `{"prompt":"p","number":2,"step":3,"async":true}`)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	var st AsyncStatus
	require.NoError(t, json.Unmarshal(r.Body, &st))
	require.True(t, validID(st.ID))
	assert.Equal(t, 6, st.Progress.Total)
	assert.Equal(t, "/api/text2image/"+st.ID, r.Header.Get("Location"))
	seen := map[int]bool{}
	var final Response
	eventually(t, "async completion", func() bool {
		g := get(t, st.StatusURL)
		require.Equal(t, http.StatusOK, g.Status)
		var m map[string]any
		require.NoError(t, json.Unmarshal(g.Body, &m))
		if m["status"] == "success" {
			require.NoError(t, json.Unmarshal(g.Body, &final))
			return true
		}
		var s AsyncStatus
		require.NoError(t, json.Unmarshal(g.Body, &s))
		seen[s.Progress.Done] = true
		return false
	})
	assert.Greater(t, len(seen), 1, "progress was observed moving: %v", seen)
	assert.Equal(t, st.ID, final.ID)
	assert.Len(t, final.Output, 2)
	assert.NotEmpty(t, final.GridURL)
	assert.Equal(t, http.StatusNotFound, get(t, ts.URL+"/api/text2image/"+uuid.NewString()).Status)
	assert.Equal(t, http.StatusNotFound, get(t, ts.URL+"/api/text2image/nope").Status)
}

func TestStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startReady(t, Config{OutputDir: dir}, &testEngine{})
	resp := decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p","seed":7}`))
	require.NoError(t, ts.stop(t))
	// a crash leftover is cleaned at start
	require.NoError(t, os.Mkdir(filepath.Join(dir, tmpPrefix+"crashed"), 0o755))

	ts2 := startReady(t, Config{OutputDir: dir}, &testEngine{})
	assert.NotContains(t, storeEntries(t, dir), tmpPrefix+"crashed")
	r := get(t, ts2.URL+"/images/"+resp.ID+"/0_0.png")
	require.Equal(t, http.StatusOK, r.Status)
	again := decodeResponse(t, get(t, ts2.URL+"/api/text2image/"+resp.ID))
	assert.Equal(t, resp.Meta, again.Meta)
	assert.Equal(t, strings.Replace(resp.Output[0].URL, ts.URL, ts2.URL, 1), again.Output[0].URL)
}

func TestRetentionByAgeAndBytes(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	mk := func(age time.Duration, size int) string {
		id := uuid.NewString()
		require.NoError(t, os.Mkdir(filepath.Join(dir, id), 0o755))
		f := filepath.Join(dir, id, "0_0.png")
		require.NoError(t, os.WriteFile(f, make([]byte, size), 0o644))
		require.NoError(t, os.Chtimes(f, now.Add(-age), now.Add(-age)))
		return id
	}
	old := mk(48*time.Hour, 10)
	mid := mk(3*time.Hour, 600)
	young := mk(time.Hour, 600)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "not-ours"), 0o755))

	s, err := OpenStore(dir, 24*time.Hour, 1000, func() time.Time { return now }, quietLogger())
	require.NoError(t, err)
	n, err := s.Sweep()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	entries := storeEntries(t, dir)
	assert.NotContains(t, entries, old, "older than the age limit")
	assert.NotContains(t, entries, mid, "oldest beyond the byte limit")
	assert.Contains(t, entries, young)
	assert.Contains(t, entries, "not-ours", "folders the store did not write are left alone")
}

func TestRetentionRunsAfterJobs(t *testing.T) {
	dir := t.TempDir()
	ts := startReady(t, Config{OutputDir: dir, RetentionBytes: 1}, &testEngine{})
	first := decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p"}`))
	second := decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p"}`))
	// every request alone exceeds 1 byte: each is swept right after it is answered
	eventually(t, "retention sweep", func() bool { return len(storeEntries(t, dir)) == 0 })
	assert.Equal(t, http.StatusNotFound, get(t, first.Output[0].URL).Status)
	assert.Equal(t, http.StatusNotFound, get(t, second.Output[0].URL).Status)
}

func TestOpenAIEndpointWithTestEngine(t *testing.T) {
	ts := startReady(t, Config{}, &testEngine{})
	r := post(t, ts.URL+"/v1/images/generations", `{"prompt":"p","n":2,"model":"dall-e-2"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var out OpenAIResponse
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Len(t, out.Data, 2)
	assert.Contains(t, out.Data[0].URL, "/images/")
	r = post(t, ts.URL+"/v1/images/generations", `{"prompt":""}`)
	require.Equal(t, http.StatusBadRequest, r.Status)
	var eb ErrorBody
	require.NoError(t, json.Unmarshal(r.Body, &eb))
	assert.Equal(t, "invalid_request_error", eb.Error.Type)
}

func TestMetricsExposed(t *testing.T) {
	ts := startReady(t, Config{}, &testEngine{stepDelay: time.Millisecond})
	decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p","batch":2}`))
	m := string(get(t, ts.URL+"/metrics").Body)
	for _, want := range []string{
		`tdxl_http_requests_total{code="200",route="text2image"} 1`,
		`tdxl_images_generated_total 2`,
		`tdxl_request_duration_seconds_count{size="512x512"} 1`,
		`tdxl_engine_pass_seconds_count{size="512x512"} 1`,
		`tdxl_engine_step_seconds_count 4`,
		`tdxl_queue_depth 0`,
		`tdxl_engine_ready 1`,
	} {
		assert.Contains(t, m, want)
	}
}

func TestRandomSeedIsDrawnAndJSONSafe(t *testing.T) {
	ts := startReady(t, Config{}, &testEngine{})
	seen := map[int64]bool{}
	for i := 0; i < 5; i++ {
		resp := decodeResponse(t, post(t, ts.URL+"/api/text2image", `{"prompt":"p","response_format":"b64_json"}`))
		s := resp.Meta.Input.Seed
		assert.True(t, s >= 0 && s < 1<<53, "seed %d must be exact as a JSON double", s)
		seen[s] = true
	}
	assert.Greater(t, len(seen), 1, "seeds are random")
}
