package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tdxl/tdxl/gateway/receipt"
)

// receiptPaths are the POST endpoints whose 200 responses get a receipt (and 202, an accepted async
// job of /api/text2image).
var receiptPaths = map[string]bool{"/api/text2image": true, "/v1/images/generations": true}

// asyncStatusPrefix is the path of an async job's status (GET /api/text2image/<id>): its 200
// responses get a receipt too, listing the images once the job is done. An async generation thus
// has two receipts chained by the job id: the 202's binds the request body to the id, the final
// status's binds the id to the images.
const asyncStatusPrefix = "/api/text2image/"

// wantsReceipt says whether r's response is signed.
func wantsReceipt(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost:
		return receiptPaths[r.URL.Path]
	case http.MethodGet:
		id, ok := strings.CutPrefix(r.URL.Path, asyncStatusPrefix)
		return ok && id != "" && !strings.Contains(id, "/")
	}
	return false
}

// signedStatus says whether a response of this status to r gets a receipt.
func signedStatus(r *http.Request, status int) bool {
	return status == http.StatusOK || (status == http.StatusAccepted && r.Method == http.MethodPost)
}

// bufferedResponse collects a proxied response so it can be signed.
type bufferedResponse struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int64
	overflow bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(s int) {
	if b.status == 0 {
		b.status = s
	}
}
func (b *bufferedResponse) Flush() {}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if int64(b.body.Len()+len(p)) > b.limit {
		b.overflow = true
		return 0, errors.New("response over the gateway's receipt buffer limit")
	}
	return b.body.Write(p)
}

// serveWithReceipt proxies a generation request, and on 200 signs a
// receipt over the request body, the images and the attested state.
func (g *Gateway) serveWithReceipt(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			g.m.proxyErrors.WithLabelValues("body_too_large").Inc()
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "request body over the gateway's limit")
			return
		}
		writeError(w, http.StatusBadRequest, "bad_body", "reading request body: "+err.Error())
		return
	}
	reqHash := sha256.Sum256(body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	rec := &bufferedResponse{header: http.Header{}, limit: g.cfg.MaxResponseBytes}
	g.proxy.ServeHTTP(rec, r)
	if rec.overflow {
		g.m.receipts.WithLabelValues("error").Inc()
		writeError(w, http.StatusBadGateway, "response_too_large", "backend response over the gateway's limit")
		return
	}
	out := rec.body.Bytes()
	if signedStatus(r, rec.status) {
		signed, b64, err := g.makeReceipt(r.Context(), r, reqHash[:], out)
		if err != nil {
			g.m.receipts.WithLabelValues("error").Inc()
			g.log.Error("signing receipt", "path", r.URL.Path, "error", err)
			// Fail closed: a response without its receipt would be
			// indistinguishable from one the gateway did not vouch for.
			writeError(w, http.StatusBadGateway, "receipt_failed", "could not sign a receipt for this response: "+err.Error())
			return
		}
		g.m.receipts.WithLabelValues("ok").Inc()
		out = signed
		rec.header.Set(receipt.Header, b64)
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(rec.status)
	_, _ = w.Write(out)
}

// generationResponse is what the gateway reads of a generation response:
// the backend's /api/text2image and OpenAI-style bodies.
type generationResponse struct {
	ID          string       `json:"id"`
	Output      []imageEntry `json:"output"`
	Data        []imageEntry `json:"data"`
	GridURL     string       `json:"gridUrl"`
	GridB64JSON string       `json:"gridB64Json"`
}

type imageEntry struct {
	URL     string `json:"url"`
	B64JSON string `json:"b64_json"`
}

// makeReceipt builds and signs the receipt; it returns the response body
// with the "receipt" field added (when it is a JSON object) and the base64
// receipt.
func (g *Gateway) makeReceipt(ctx context.Context, r *http.Request, reqHash, body []byte) ([]byte, string, error) {
	cert := g.servedCertificate(r)
	if cert == nil {
		return nil, "", errors.New("no certificate for this connection")
	}
	key, _, err := signerOf(cert)
	if err != nil {
		return nil, "", err
	}
	ce, err := g.ev.cached(ctx, cert)
	if err != nil {
		return nil, "", fmt.Errorf("evidence for the receipt: %w", err)
	}
	respHash := sha256.Sum256(body)
	rc := &receipt.Receipt{
		Version: receipt.Version, Path: r.URL.Path, RequestSHA256: reqHash, ResponseSHA256: respHash[:],
		ModelSHA256: g.runtime().ModelDigest(), EvidenceSHA256: ce.digest[:], SPKISHA256: spkiHash(cert),
		Time: time.Now().UTC(), Images: []receipt.Image{},
	}
	isObject := isJSONObject(body)
	if isObject {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, "", fmt.Errorf("reading the response: %w", err)
		}
		if _, dup := top[receipt.JSONField]; dup {
			return nil, "", fmt.Errorf("the backend's response already has a %q field", receipt.JSONField)
		}
		var doc generationResponse
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, "", fmt.Errorf("reading the response: %w", err)
		}
		if len(doc.ID) <= 256 {
			rc.ResponseID = doc.ID
		}
		if rc.Images, err = g.imageDigests(ctx, doc); err != nil {
			return nil, "", err
		}
	}
	msg, err := receipt.Sign(key, rc)
	if err != nil {
		return nil, "", err
	}
	b64 := base64.StdEncoding.EncodeToString(msg)
	if !isObject {
		return body, b64, nil
	}
	return addJSONField(body, receipt.JSONField, b64), b64, nil
}

// imageDigests hashes every image of the response: inline ones decoded from
// base64, URL ones fetched from the backend by the URL's path.
func (g *Gateway) imageDigests(ctx context.Context, doc generationResponse) ([]receipt.Image, error) {
	var out []receipt.Image
	add := func(name string, e imageEntry) error {
		switch {
		case e.B64JSON != "":
			data, err := base64.StdEncoding.DecodeString(e.B64JSON)
			if err != nil {
				return fmt.Errorf("decoding %s: %w", name, err)
			}
			h := sha256.Sum256(data)
			out = append(out, receipt.Image{Name: name, SHA256: h[:]})
		case e.URL != "":
			p, h, err := g.fetchImage(ctx, e.URL)
			if err != nil {
				return err
			}
			out = append(out, receipt.Image{Name: p, SHA256: h})
		}
		return nil
	}
	for i, e := range doc.Output {
		if err := add(fmt.Sprintf("output[%d]", i), e); err != nil {
			return nil, err
		}
	}
	for i, e := range doc.Data {
		if err := add(fmt.Sprintf("data[%d]", i), e); err != nil {
			return nil, err
		}
	}
	if err := add("grid", imageEntry{URL: doc.GridURL, B64JSON: doc.GridB64JSON}); err != nil {
		return nil, err
	}
	if len(out) > receipt.MaxImages {
		return nil, fmt.Errorf("%d images, max %d", len(out), receipt.MaxImages)
	}
	return out, nil
}

// fetchImage GETs the image at the path of raw from the backend and returns
// that path and the SHA-256 of the bytes.
func (g *Gateway) fetchImage(ctx context.Context, raw string) (string, []byte, error) {
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(u.Path, "/images/") {
		return "", nil, fmt.Errorf("image URL %q is not a backend /images/ URL", raw)
	}
	target := *g.backend.url
	target.Path, target.RawPath, target.RawQuery = u.Path, u.RawPath, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return "", nil, fmt.Errorf("fetching image %s: %w", u.Path, err)
	}
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		return "", nil, fmt.Errorf("fetching image %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("fetching image %s: backend answered %s", u.Path, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, g.cfg.MaxResponseBytes+1))
	if err != nil {
		return "", nil, fmt.Errorf("fetching image %s: %w", u.Path, err)
	}
	if n > g.cfg.MaxResponseBytes {
		return "", nil, fmt.Errorf("image %s over %d bytes", u.Path, g.cfg.MaxResponseBytes)
	}
	return u.Path, h.Sum(nil), nil
}

// isJSONObject reports whether body is one valid JSON object.
func isJSONObject(body []byte) bool {
	return json.Valid(body) && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
}

// addJSONField appends "key": value to a JSON object, keeping every other
// byte of it as it was. body must be a valid JSON object.
func addJSONField(body []byte, key, value string) []byte {
	trimmed := bytes.TrimRight(body, " \t\r\n")
	end := len(trimmed) - 1                                         // the closing brace
	start := len(trimmed) - len(bytes.TrimLeft(trimmed, " \t\r\n")) // the opening brace
	inner := bytes.TrimSpace(trimmed[start+1 : end])
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	out := make([]byte, 0, len(body)+len(k)+len(v)+3)
	out = append(out, trimmed[:end]...)
	if len(inner) > 0 {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, v...)
	out = append(out, '}')
	out = append(out, body[len(trimmed):]...)
	return out
}
