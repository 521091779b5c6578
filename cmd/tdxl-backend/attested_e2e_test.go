package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/measure"
	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/backend"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
	"github.com/tdxl/tdxl/gateway/receipt"
	"github.com/tdxl/tdxl/policy"
	"github.com/tdxl/tdxl/verifier"
)

// TestAttestedStackWithRealCore is the whole product on loopback: the real
// core on the tiny model behind tdxl-backend's HTTP service, the gateway in
// front of it quoting with the simulated TD (the model's manifest digest
// extended into RTMR3), and the client verifying the pod against a policy,
// then generating over the pinned connection and checking the receipt
// against the image bytes it downloads. A policy naming another model digest
// is refused before any prompt is sent.
func TestAttestedStackWithRealCore(t *testing.T) {
	base := startService(t, backend.Config{})

	man, err := measure.ModelManifest(context.Background(), tinyDir, measure.ManifestOptions{})
	require.NoError(t, err)
	modelDigest := man.Digest()
	td, err := testtee.NewTDX(testtee.TDXOptions{Seed: []byte(t.Name())})
	require.NoError(t, err)
	ev := attest.NewEvent(0, attest.EventModel, modelDigest[:], "stabilityai/sdxl-turbo")
	var d [48]byte
	copy(d[:], ev.Digest)
	require.NoError(t, td.Extend(3, d))
	gw := gatewaytest.Start(t, gatewaytest.Options{Backend: base, Issuer: td,
		Runtime: gateway.Runtime{Events: []attest.Event{ev}, Extended: true}})

	roots := verifier.DefaultRoots()
	require.NoError(t, roots.AddPEM(td.RootPEM(), "simulated-root.pem"))
	opts := verifier.OnlineOptions{Roots: roots, Getter: td.Getter()}
	b := td.Body([64]byte{})
	h := hex.EncodeToString
	policyFor := func(model []byte) *policy.Policy {
		y := fmt.Sprintf(`apiVersion: tdxl/v1
tees: [tdx]
tdx:
  mrtd: [%s]
  rtmr0: [%s]
  rtmr1: [%s]
  rtmr2: [%s]
  mrseam: [%s]
runtime:
  models: ["stabilityai/sdxl-turbo@sha256:%s"]
`, h(b.MrTd), h(b.Rtmrs[0]), h(b.Rtmrs[1]), h(b.Rtmrs[2]), h(b.MrSeam), h(model))
		pol, err := policy.Parse("stack.yaml", []byte(y))
		require.NoError(t, err, y)
		return pol
	}

	// Another model digest: refused with a typed error, nothing generated.
	other := sha256.Sum256([]byte("another model"))
	_, err = verifier.Connect(context.Background(), gw.URL, policyFor(other[:]), opts)
	require.Error(t, err)
	assert.True(t, errors.Is(err, verifier.ErrRuntimeDigest), "%v", err)

	sess, err := verifier.Connect(context.Background(), gw.URL, policyFor(modelDigest[:]), opts)
	require.NoError(t, err)
	client, err := sess.Client()
	require.NoError(t, err)

	body := `{"prompt":"a panda","number":2,"step":2,"seed":7,"size":"64x64"}`
	resp, err := client.Post(gw.URL+"/api/text2image", "application/x-www-form-urlencoded", strings.NewReader(body))
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)

	var out struct {
		backend.Response
		Receipt string `json:"receipt"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Len(t, out.Output, 2)
	assert.Equal(t, out.Receipt, resp.Header.Get(receipt.Header))
	rb, err := base64.StdEncoding.DecodeString(out.Receipt)
	require.NoError(t, err)
	rc, err := receipt.VerifyReceipt(rb, sess.Certificate.PublicKey)
	require.NoError(t, err)
	req := sha256.Sum256([]byte(body))
	assert.Equal(t, req[:], rc.RequestSHA256)
	assert.Equal(t, modelDigest[:], rc.ModelSHA256)

	// Image URLs point at the gateway (the scheme and host the client used),
	// and the receipt names the SHA-256 of each image the client downloads.
	byName := map[string][]byte{}
	for _, im := range rc.Images {
		byName[im.Name] = im.SHA256
	}
	urls := []string{out.GridURL}
	for _, o := range out.Output {
		urls = append(urls, o.URL)
	}
	for _, u := range urls {
		require.True(t, strings.HasPrefix(u, gw.URL+"/images/"+out.ID+"/"), u)
		r, err := client.Get(u)
		require.NoError(t, err)
		png, err := io.ReadAll(r.Body)
		r.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode, u)
		sum := sha256.Sum256(png)
		assert.Equal(t, sum[:], byName[strings.TrimPrefix(u, gw.URL)], "receipt digest of %s", u)
	}

	// A receipt does not verify under any other key.
	_, err = receipt.VerifyReceipt(rb, td.PCKCertificate().PublicKey)
	assert.Error(t, err)
}
