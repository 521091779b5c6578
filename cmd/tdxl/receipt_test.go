package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tdxl/tdxl/gateway/receipt"
	"github.com/tdxl/tdxl/verifier"
)

func TestCheckReceipt(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pod"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)
	s := &verifier.Session{Certificate: cert, SPKISHA256: sha256.Sum256(cert.RawSubjectPublicKeyInfo)}
	reqBody := []byte(`{"prompt":"p"}`)
	mk := func(signer *ecdsa.PrivateKey, body []byte) string {
		spki, _ := x509.MarshalPKIXPublicKey(signer.Public())
		h, rq := sha256.Sum256(spki), sha256.Sum256(body)
		r := &receipt.Receipt{Version: receipt.Version, Path: "/api/text2image", RequestSHA256: rq[:], ResponseSHA256: rq[:],
			EvidenceSHA256: rq[:], SPKISHA256: h[:], Time: time.Now()}
		b, err := receipt.Sign(signer, r)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	resp := func(header, field string) (*http.Response, []byte) {
		h := http.Header{}
		if header != "" {
			h.Set(receipt.Header, header)
		}
		body := []byte(`{"id":"x"}`)
		if field != "" {
			body = []byte(`{"id":"x","receipt":"` + field + `"}`)
		}
		return &http.Response{Header: h}, body
	}
	good := mk(key, reqBody)
	if r, b := resp(good, good); true {
		if rc, err := checkReceipt(s, r, reqBody, b); err != nil || rc == nil {
			t.Fatalf("good receipt: %v", err)
		}
	}
	if r, b := resp("", ""); true {
		if rc, err := checkReceipt(s, r, reqBody, b); err != nil || rc != nil {
			t.Fatal("no receipt must pass without one")
		}
	}
	for name, c := range map[string][2]string{
		"other key":         {mk(other, reqBody), ""},
		"other request":     {mk(key, []byte("other")), ""},
		"header != field":   {good, mk(key, reqBody)},
		"not base64":        {"@@@", ""},
		"tampered in field": {"", strings.Replace(good, good[10:12], "AA", 1)},
	} {
		r, b := resp(c[0], c[1])
		if _, err := checkReceipt(s, r, reqBody, b); !errors.Is(err, verifier.ErrReceipt) {
			t.Errorf("%s: want receipt error, got %v", name, err)
		}
	}
}

// trustRoots in the policy file (relative paths) replace --trust-root.
func TestPolicyTrustRoots(t *testing.T) {
	p := startPod(t, false)
	dir := t.TempDir()
	root, _ := os.ReadFile(p.root)
	os.WriteFile(filepath.Join(dir, "root.pem"), root, 0o644)
	pol, _ := os.ReadFile(p.policy)
	path := filepath.Join(dir, "p.yaml")
	os.WriteFile(path, append(pol, []byte("trustRoots: [root.pem]\n")...), 0o644)
	if code, out, errs := tdxl(t, "verify", p.gw.URL, "--policy", path, "--pccs", p.pccs); code != 0 {
		t.Fatalf("policy trustRoots: %d %s %s", code, out, errs)
	}
}
