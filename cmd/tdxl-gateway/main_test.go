package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/envelope"
)

// syncBuffer is a goroutine-safe log sink.
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

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRun runs the command in-process and waits until its evidence
// endpoint answers.
func startRun(t *testing.T, args ...string) (addr string, logs *syncBuffer, stop func() int) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ready"}`) }))
	t.Cleanup(backend.Close)
	addr = freePort(t)
	bin := filepath.Join(t.TempDir(), "tdxl-backend")
	os.WriteFile(bin, []byte("backend"), 0o755)
	args = append([]string{"--listen", addr, "--backend", backend.URL, "--backend-binary", bin}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, io.Discard, logs) }()
	c := client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get("https://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case rc := <-code:
			t.Fatalf("exited with %d before ready:\n%s", rc, logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", logs)
		}
	}
	return addr, logs, func() int {
		cancel()
		select {
		case rc := <-code:
			return rc
		case <-time.After(20 * time.Second):
			t.Fatal("did not stop")
			return -1
		}
	}
}

func client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test checks the attested key
}

func TestSimulatedFlagsReachTheQuote(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root.pem")
	mrtd := strings.Repeat("ab", 48)
	rtmr1 := strings.Repeat("01", 48)
	addr, logs, stop := startRun(t, "--tee", "simulated", "--simulated-root", root, "--simulated-mrtd", mrtd,
		"--simulated-rtmr1", rtmr1, "--simulated-debug", "--simulated-tcb-status", "OutOfDate")
	nonce := bytes.Repeat([]byte{9}, 16)
	resp, err := client().Get("https://" + addr + gateway.EvidencePath + "?nonce=" + hex.EncodeToString(nonce))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cert := resp.TLS.PeerCertificates[0]
	ev, err := envelope.OpenEvidence(body, cert.PublicKey)
	if err != nil {
		t.Fatalf("%v (status %d)", err, resp.StatusCode)
	}
	if !ev.RTMRExtended || len(ev.EventLog) != 3 || len(ev.Collateral) == 0 {
		t.Fatalf("extended %v (%s), %d events, %d collateral", ev.RTMRExtended, ev.RTMRStatus, len(ev.EventLog), len(ev.Collateral))
	}
	q, err := abi.QuoteToProto(ev.Quote)
	if err != nil {
		t.Fatal(err)
	}
	b := q.(*pb.QuoteV4).GetTdQuoteBody()
	rd := attest.ReportData(cert.RawSubjectPublicKeyInfo, nonce)
	if hex.EncodeToString(b.GetMrTd()) != mrtd || hex.EncodeToString(b.GetRtmrs()[1]) != rtmr1 ||
		b.GetTdAttributes()[0]&1 != 1 || !bytes.Equal(b.GetReportData(), rd[:]) {
		t.Fatalf("quote body does not carry the flags: %+v", b)
	}
	// The root written by --simulated-root verifies the quote's chain.
	pemBytes, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	rc, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rc)
	now := time.Now()
	if err := verify.RawTdxQuote(ev.Quote, &verify.Options{TrustedRoots: pool,
		Now: &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}}); err != nil {
		t.Fatalf("quote does not chain to the written root: %v", err)
	}
	if !strings.Contains(logs.String(), "SIMULATED TEE") || !strings.Contains(logs.String(), "wrote simulated root") {
		t.Fatal("no simulated-mode warning")
	}
	if rc := stop(); rc != exitOK {
		t.Fatalf("exit %d after SIGTERM-equivalent:\n%s", rc, logs)
	}
}

func TestNoneModeWarnsOnEveryEvidenceRequest(t *testing.T) {
	addr, logs, stop := startRun(t, "--tee", "none")
	for i := 0; i < 2; i++ {
		resp, err := client().Get("https://" + addr + gateway.EvidencePath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get(gateway.HeaderUnattested) != "true" {
			t.Fatal("not marked unattested")
		}
	}
	if n := strings.Count(logs.String(), "serving UNATTESTED evidence"); n != 2 {
		t.Fatalf("%d per-request warnings, want 2", n)
	}
	if !strings.Contains(logs.String(), "UNATTESTED MODE") {
		t.Fatal("no start warning")
	}
	if rc := stop(); rc != exitOK {
		t.Fatalf("exit %d", rc)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for name, args := range map[string][]string{
		"unknown flag":      {"--bogus"},
		"stray argument":    {"serve"},
		"bad tee":           {"--tee", "sgx"},
		"short mrtd":        {"--tee", "simulated", "--simulated-mrtd", "abcd"},
		"bad tcb status":    {"--tee", "simulated", "--simulated-tcb-status", "Fine"},
		"acme no domains":   {"--tee", "none", "--tls", "acme"},
		"files without key": {"--tee", "none", "--tls", "files", "--tls-cert", "c.pem"},
		"bad backend":       {"--tee", "none", "--backend", "ftp://x"},
		"bad tls mode":      {"--tee", "none", "--tls", "magic"},
		"root without sim":  {"--tee", "none", "--simulated-root", "r.pem"},
	} {
		var stderr bytes.Buffer
		if rc := run(context.Background(), args, io.Discard, &stderr); rc != exitUsage {
			t.Errorf("%s: exit %d, want %d: %s", name, rc, exitUsage, stderr.String())
		}
		if !strings.HasPrefix(stderr.String(), "tdxl-gateway: error: ") {
			t.Errorf("%s: stderr %q", name, stderr.String())
		}
	}
	var out bytes.Buffer
	if rc := run(context.Background(), []string{"--help"}, io.Discard, &out); rc != exitOK || !strings.Contains(out.String(), "--simulated-root") && !strings.Contains(out.String(), "-simulated-root") {
		t.Fatalf("--help: %d %s", rc, out.String())
	}
}
