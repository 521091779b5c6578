package gateway_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/envelope"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
)

// writeKeyPair writes a fresh self-signed certificate and key as PEM files
// (each through a temporary file and rename, as a cert manager would).
func writeKeyPair(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	for path, blk := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: kd}} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForNewKey polls the evidence endpoint until the served key differs
// from old, and checks the new evidence binds the new key.
func waitForNewKey(t *testing.T, gw *gatewaytest.Gateway, old []byte) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath)
		cert := resp.TLS.PeerCertificates[0]
		if !bytes.Equal(cert.RawSubjectPublicKeyInfo, old) {
			ev := mustOpen(t, resp, body)
			want := attest.ReportData(cert.RawSubjectPublicKeyInfo, nil)
			if !bytes.Equal(reportDataOf(t, ev), want[:]) {
				t.Fatal("evidence after the certificate change does not bind the new key")
			}
			return cert
		}
		if time.Now().After(deadline) {
			t.Fatal("the new certificate was never served")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFilesModeReloadIsRequoted(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeKeyPair(t, certFile, keyFile)
	iss := &quoteIssuer{tee: attest.TEETDX}
	gw, _ := start(t, iss, func(c *gateway.Config) {
		c.TLS, c.CertFile, c.KeyFile, c.FilesReloadInterval = gateway.TLSFiles, certFile, keyFile, 20*time.Millisecond
	})
	resp, body := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath)
	mustOpen(t, resp, body)
	first := resp.TLS.PeerCertificates[0]
	if _, err := envelope.EvidenceFromCertificate(first); err == nil {
		t.Fatal("files-mode certificate unexpectedly carries evidence")
	}
	quotes := iss.count.Load()
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	writeKeyPair(t, certFile, keyFile)
	waitForNewKey(t, gw, first.RawSubjectPublicKeyInfo)
	if iss.count.Load() <= quotes {
		t.Fatal("reload was not re-quoted")
	}
	// A broken rewrite keeps the previous certificate in service.
	os.WriteFile(certFile, []byte("garbage"), 0o600)
	time.Sleep(100 * time.Millisecond)
	if resp, _ := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath); resp.StatusCode != 200 {
		t.Fatalf("after a broken rewrite: %d", resp.StatusCode)
	}
}

func TestSelfSignedRotationIsRequoted(t *testing.T) {
	gw, _ := start(t, &quoteIssuer{tee: attest.TEETDX}, func(c *gateway.Config) { c.SelfSignedValidity = 1500 * time.Millisecond })
	resp, body := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath)
	mustOpen(t, resp, body)
	first := resp.TLS.PeerCertificates[0]
	second := waitForNewKey(t, gw, first.RawSubjectPublicKeyInfo)
	msg, err := envelope.EvidenceFromCertificate(second)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := envelope.OpenEvidence(msg, second.PublicKey)
	if err != nil {
		t.Fatalf("rotated certificate's embedded evidence: %v", err)
	}
	want := attest.ReportData(second.RawSubjectPublicKeyInfo, nil)
	if !bytes.Equal(reportDataOf(t, ev), want[:]) {
		t.Fatal("embedded evidence does not bind the rotated key")
	}
}
