package gateway_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/envelope"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
	"github.com/tdxl/tdxl/gateway/receipt"
)

func start(t *testing.T, iss attest.Issuer, configure func(*gateway.Config)) (*gatewaytest.Gateway, *fakeBackend) {
	t.Helper()
	be := newFakeBackend(t)
	gw := gatewaytest.Start(t, gatewaytest.Options{Backend: be.URL, Issuer: iss, Configure: configure,
		Runtime: gateway.Runtime{Events: []attest.Event{
			attest.NewEvent(0, attest.EventModel, bytes.Repeat([]byte{0xab}, 32), "test model")}}})
	return gw, be
}

func TestEvidenceBindsServedCertificateAndNonce(t *testing.T) {
	iss := &quoteIssuer{tee: attest.TEETDX}
	gw, _ := start(t, iss, nil)
	c := gw.Client()
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	resp, body := getEvidence(t, c, gw.URL+gateway.EvidencePath+"?nonce="+hex.EncodeToString(nonce))
	ev := mustOpen(t, resp, body)
	cert := resp.TLS.PeerCertificates[0]
	want := attest.ReportData(cert.RawSubjectPublicKeyInfo, nonce)
	if !bytes.Equal(reportDataOf(t, ev), want[:]) {
		t.Fatal("REPORTDATA is not ReportData(served SPKI, nonce)")
	}
	if !bytes.Equal(ev.Nonce, nonce) {
		t.Fatalf("nonce %x", ev.Nonce)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if !bytes.Equal(ev.SPKISHA256, spki[:]) || ev.GatewayVersion != "gatewaytest" || len(ev.EventLog) != 1 {
		t.Fatalf("evidence fields: %+v", ev)
	}
	// Another nonce gives another binding; a verifier's own nonce check fails on a replay.
	other := attest.ReportData(cert.RawSubjectPublicKeyInfo, bytes.Repeat([]byte{1}, 32))
	if bytes.Equal(reportDataOf(t, ev), other[:]) {
		t.Fatal("binding ignores the nonce")
	}
	// The signature verifies with the certificate's key and with no other.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := envelope.OpenEvidence(body, k.Public()); !errors.Is(err, envelope.ErrWrongKey) {
		t.Fatalf("other key: %v", err)
	}
	// Cached evidence: no nonce, bound to the same key, and the same bytes
	// as the certificate extension (self-signed mode).
	resp, cached := getEvidence(t, c, gw.URL+gateway.EvidencePath)
	ev = mustOpen(t, resp, cached)
	want = attest.ReportData(resp.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo, nil)
	if ev.Nonce != nil || !bytes.Equal(reportDataOf(t, ev), want[:]) {
		t.Fatal("cached evidence binding")
	}
	ext, err := envelope.EvidenceFromCertificate(resp.TLS.PeerCertificates[0])
	if err != nil || !bytes.Equal(ext, cached) {
		t.Fatalf("certificate extension is not the cached evidence (err %v)", err)
	}
	before := iss.count.Load()
	for i := 0; i < 3; i++ {
		getEvidence(t, c, gw.URL+gateway.EvidencePath)
	}
	if iss.count.Load() != before {
		t.Fatal("cached evidence requests made new quotes")
	}
}

func TestBadNoncesGet400(t *testing.T) {
	gw, _ := start(t, &quoteIssuer{tee: attest.TEETDX}, nil)
	c := gw.Client()
	for name, q := range map[string]string{
		"odd hex":   strings.Repeat("a", 33),
		"too short": strings.Repeat("ab", 15),
		"too long":  strings.Repeat("ab", 65),
		"not hex":   strings.Repeat("zz", 16),
		"empty":     "",
		"twice":     strings.Repeat("ab", 16) + "&nonce=" + strings.Repeat("ab", 16),
	} {
		resp, body := getEvidence(t, c, gw.URL+gateway.EvidencePath+"?nonce="+q)
		var e struct {
			Status string `json:"status"`
			Error  struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error.Code != "bad_nonce" || e.Status != "error" {
			t.Errorf("%s: status %d body %s", name, resp.StatusCode, body)
		}
	}
	for _, n := range []int{16, 64} {
		resp, body := getEvidence(t, c, gw.URL+gateway.EvidencePath+"?nonce="+strings.Repeat("0f", n))
		mustOpen(t, resp, body)
	}
}

func TestNonceQuotesAreRateLimitedPerClient(t *testing.T) {
	gw, _ := start(t, &quoteIssuer{tee: attest.TEETDX}, func(c *gateway.Config) { c.NonceRate, c.NonceBurst = 0.001, 2 })
	c := gw.Client()
	u := gw.URL + gateway.EvidencePath + "?nonce=" + strings.Repeat("ab", 16)
	for i := 0; i < 2; i++ {
		if resp, body := getEvidence(t, c, u); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, _ := getEvidence(t, c, u)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third fresh quote: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, body := getEvidence(t, c, gw.URL+gateway.EvidencePath); resp.StatusCode != 200 {
		t.Fatalf("cached evidence must not be rate limited: %d %s", resp.StatusCode, body)
	}
}

func TestNoneModeEvidenceIsMarkedUnattested(t *testing.T) {
	gw, _ := start(t, &quoteIssuer{tee: attest.TEENone}, nil)
	resp, body := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath+"?nonce="+strings.Repeat("01", 16))
	ev := mustOpen(t, resp, body)
	if !ev.Unattested || ev.TEE != attest.TEENone || len(ev.Quote) != 0 || ev.RTMRExtended {
		t.Fatalf("none evidence: %+v", ev)
	}
	if resp.Header.Get(gateway.HeaderUnattested) != "true" || resp.Header.Get(gateway.HeaderTEE) != "none" {
		t.Fatalf("headers %v", resp.Header)
	}
}

func TestProxyEndToEnd(t *testing.T) {
	gw, be := start(t, &quoteIssuer{tee: attest.TEETDX}, func(c *gateway.Config) { c.MaxBodyBytes = 4096 })
	c := gw.Client()
	resp, err := c.Post(gw.URL+"/echo", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	var echo map[string]any
	json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	host := gw.Addr
	if echo["xfh"] != host || echo["xfp"] != "https" || echo["xff"] != "127.0.0.1" || echo["len"] != float64(5) || echo["host"] != host {
		t.Fatalf("forwarded headers: %v", echo)
	}
	if resp.Header.Get(receipt.Header) != "" {
		t.Fatal("a backend-set receipt header passed through")
	}
	// Client-supplied X-Forwarded-* are not trusted.
	req, _ := http.NewRequest("GET", gw.URL+"/echo", nil)
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-For", "10.9.9.9")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if echo["xfh"] != host || echo["xff"] != "127.0.0.1" {
		t.Fatalf("client X-Forwarded-* leaked: %v", echo)
	}
	// Body limit.
	resp, err = c.Post(gw.URL+"/echo", "text/plain", bytes.NewReader(make([]byte, 5000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", resp.StatusCode)
	}
	// Health, readiness (proxied), metrics.
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := c.Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	be.ready.Store(false)
	if resp, _ := getEvidence(t, c, gw.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a loading backend: %d", resp.StatusCode)
	}
	getEvidence(t, c, gw.URL+gateway.EvidencePath+"?nonce="+strings.Repeat("cd", 16))
	_, metrics := getEvidence(t, c, gw.URL+"/metrics")
	for _, m := range []string{`tdxl_gateway_quotes_total{kind="nonce",result="ok"} 1`,
		`tdxl_gateway_quote_duration_seconds_count{kind="cached"} 1`, `tdxl_gateway_proxy_errors_total{reason="body_too_large"} 1`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
	// The backend's own metrics, which /metrics (the gateway's) would otherwise hide.
	bresp, bmetrics := getEvidence(t, c, gw.URL+"/metrics/backend?x=1")
	if bresp.StatusCode != 200 || !strings.Contains(string(bmetrics), "fake_backend_requests_total 1") ||
		strings.Contains(string(bmetrics), "tdxl_gateway_") {
		t.Fatalf("/metrics/backend: %d %s", bresp.StatusCode, bmetrics)
	}
	// Backend down: 502 JSON and a proxy error counted.
	be.Close()
	resp, body := getEvidence(t, c, gw.URL+"/echo")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "backend_unavailable") {
		t.Fatalf("backend down: %d %s", resp.StatusCode, body)
	}
}

func TestUnixSocketBackend(t *testing.T) {
	be := newFakeBackend(t)
	sock := t.TempDir() + "/backend.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: be.Config.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	gw := gatewaytest.Start(t, gatewaytest.Options{Backend: "unix:" + sock, Issuer: &quoteIssuer{tee: attest.TEETDX}})
	resp, body := getEvidence(t, gw.Client(), gw.URL+"/readyz")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ready") {
		t.Fatalf("readyz over unix socket: %d %s", resp.StatusCode, body)
	}
}

func postGenerate(t *testing.T, gw *gatewaytest.Gateway, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := gw.Client().Post(gw.URL+"/api/text2image", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestReceiptOverRequestImagesAndEvidence(t *testing.T) {
	gw, be := start(t, &quoteIssuer{tee: attest.TEETDX}, nil)
	reqBody := `{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", "number": 2}`
	resp, body := postGenerate(t, gw, reqBody)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var doc struct {
		ID      string `json:"id"`
		Receipt string `json:"receipt"`
		Output  []struct {
			URL string `json:"url"`
		} `json:"output"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body is no longer JSON: %v\n%s", err, body)
	}
	if doc.Receipt == "" || doc.Receipt != resp.Header.Get(receipt.Header) || doc.Status != "success" || len(doc.Output) != 2 {
		t.Fatalf("receipt field/header: %s", body)
	}
	raw, err := base64.StdEncoding.DecodeString(doc.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	cert := resp.TLS.PeerCertificates[0]
	rc, err := receipt.VerifyReceipt(raw, cert.PublicKey)
	if err != nil {
		t.Fatalf("receipt does not verify with the served key: %v", err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := receipt.VerifyReceipt(raw, k.Public()); err == nil {
		t.Fatal("receipt verified with another key")
	}
	reqHash := sha256.Sum256([]byte(reqBody))
	if !bytes.Equal(rc.RequestSHA256, reqHash[:]) || rc.ResponseID != doc.ID || rc.Path != "/api/text2image" {
		t.Fatalf("receipt: %+v", rc)
	}
	if !bytes.Equal(rc.ModelSHA256, bytes.Repeat([]byte{0xab}, 32)) {
		t.Fatalf("model digest %x", rc.ModelSHA256)
	}
	for i, o := range doc.Output {
		path := o.URL[strings.Index(o.URL, "/images/"):]
		if !strings.HasPrefix(o.URL, "https://"+gw.Addr+"/images/") {
			t.Fatalf("image URL %q does not use the gateway's scheme and host", o.URL)
		}
		img := be.image(path)
		if !rc.HasImage(img) {
			t.Fatalf("image %d not in receipt", i)
		}
		got, ok := rc.ImageSHA256(path)
		h := sha256.Sum256(img)
		if !ok || !bytes.Equal(got, h[:]) {
			t.Fatalf("image %d digest", i)
		}
	}
	grid := "/images/" + doc.ID + "/image_grid.png"
	if d, ok := rc.ImageSHA256(grid); !ok || len(rc.Images) != 3 || !rc.HasImage(be.image(grid)) || len(d) != 32 {
		t.Fatalf("grid image not in receipt: %+v", rc.Images)
	}
	// The evidence digest names the cached evidence served on this key.
	eresp, ev := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath)
	mustOpen(t, eresp, ev)
	evh := sha256.Sum256(ev)
	if !bytes.Equal(rc.EvidenceSHA256, evh[:]) {
		t.Fatal("receipt evidence digest is not SHA-256 of the cached evidence")
	}
	// The response with "receipt" removed hashes to response_sha256.
	stripped := bytes.Replace(body, []byte(`,"receipt":"`+doc.Receipt+`"`), nil, 1)
	rh := sha256.Sum256(stripped)
	if !bytes.Equal(rh[:], rc.ResponseSHA256) {
		t.Fatal("response_sha256 is not over the backend's body")
	}
}

func TestReceiptForInlineImagesAndErrors(t *testing.T) {
	gw, _ := start(t, &quoteIssuer{tee: attest.TEETDX}, nil)
	resp, body := postGenerate(t, gw, `{"prompt":"cat","response_format":"b64_json"}`)
	var doc struct {
		Receipt string
		Output  []struct {
			B64 string `json:"b64_json"`
		}
	}
	json.Unmarshal(body, &doc)
	raw, _ := base64.StdEncoding.DecodeString(resp.Header.Get(receipt.Header))
	rc, err := receipt.VerifyReceipt(raw, resp.TLS.PeerCertificates[0].PublicKey)
	if err != nil || len(doc.Output) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	png, _ := base64.StdEncoding.DecodeString(doc.Output[0].B64)
	if d, ok := rc.ImageSHA256("output[0]"); !ok || !rc.HasImage(png) || len(d) != 32 {
		t.Fatal("inline image not in receipt")
	}
	// A backend error gets no receipt and passes through unchanged.
	resp, body = postGenerate(t, gw, `{"prompt":""}`)
	if resp.StatusCode != 400 || resp.Header.Get(receipt.Header) != "" || strings.Contains(string(body), "receipt") {
		t.Fatalf("error response: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// An image the gateway cannot fetch: fail closed, no unsigned success.
	resp, body = postGenerate(t, gw, `{"prompt":"dog","fail":true}`)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "receipt_failed") {
		t.Fatalf("unfetchable image: %d %s", resp.StatusCode, body)
	}
}

func TestReceiptForOpenAIEndpoint(t *testing.T) {
	gw, _ := start(t, &quoteIssuer{tee: attest.TEETDX}, nil)
	resp, err := gw.Client().Post(gw.URL+"/v1/images/generations", "application/json", strings.NewReader(`{"prompt":"x","n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	raw, _ := base64.StdEncoding.DecodeString(resp.Header.Get(receipt.Header))
	rc, err := receipt.VerifyReceipt(raw, resp.TLS.PeerCertificates[0].PublicKey)
	if err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if rc.Path != "/v1/images/generations" || len(rc.Images) != 2 || !rc.HasImage([]byte("openai png 1")) {
		t.Fatalf("receipt %+v", rc)
	}
	if _, ok := rc.ImageSHA256("data[1]"); !ok {
		t.Fatal("inline OpenAI images are named data[i]")
	}
}

// An async generation gets two receipts chained by the job id: the 202 binds the request body to the
// id (no images yet), the job's final status binds the id to the images.
func TestReceiptsForAsyncJobs(t *testing.T) {
	gw, be := start(t, &quoteIssuer{tee: attest.TEETDX}, nil)
	reqBody := `{"prompt": "a red fox in snow", "number": 1, "async": true}`
	resp, body := postGenerate(t, gw, reqBody)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	pub := resp.TLS.PeerCertificates[0].PublicKey
	open := func(resp *http.Response, body []byte) *receipt.Receipt {
		t.Helper()
		var doc struct {
			Receipt string `json:"receipt"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Receipt == "" || doc.Receipt != resp.Header.Get(receipt.Header) {
			t.Fatalf("no receipt field/header (%v): %s", err, body)
		}
		raw, _ := base64.StdEncoding.DecodeString(doc.Receipt)
		rc, err := receipt.VerifyReceipt(raw, pub)
		if err != nil {
			t.Fatalf("receipt does not verify with the served key: %v", err)
		}
		return rc
	}
	accepted := open(resp, body)
	var job struct {
		ID string `json:"id"`
	}
	json.Unmarshal(body, &job)
	reqHash := sha256.Sum256([]byte(reqBody))
	if accepted.ResponseID != job.ID || job.ID == "" || !bytes.Equal(accepted.RequestSHA256, reqHash[:]) ||
		len(accepted.Images) != 0 || accepted.Path != "/api/text2image" {
		t.Fatalf("202 receipt: %+v (job %q)", accepted, job.ID)
	}

	sresp, err := gw.Client().Get(gw.URL + "/api/text2image/" + job.ID)
	if err != nil {
		t.Fatal(err)
	}
	sbody, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	if sresp.StatusCode != 200 {
		t.Fatalf("status: %d %s", sresp.StatusCode, sbody)
	}
	final := open(sresp, sbody)
	empty := sha256.Sum256(nil)
	if final.ResponseID != job.ID || final.Path != "/api/text2image/"+job.ID || !bytes.Equal(final.RequestSHA256, empty[:]) {
		t.Fatalf("final receipt: %+v", final)
	}
	img := be.image("/images/" + job.ID + "/0_0.png")
	if img == nil || !final.HasImage(img) {
		t.Fatalf("the job's image is not in the final receipt: %+v", final.Images)
	}

	// An unknown job's 404 passes through unsigned; other GETs are not signed.
	nresp, err := gw.Client().Get(gw.URL + "/api/text2image/nope")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, nresp.Body)
	nresp.Body.Close()
	if nresp.StatusCode != 404 || nresp.Header.Get(receipt.Header) != "" {
		t.Fatalf("unknown job: %d, receipt %q", nresp.StatusCode, nresp.Header.Get(receipt.Header))
	}
}
