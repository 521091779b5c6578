package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
	"github.com/tdxl/tdxl/policy"
	"github.com/tdxl/tdxl/verifier"
)

// TestMain lets a test re-run this binary as the real tdxl (TDXL_TEST_MAIN=1), to look at the
// process's own stdout.
func TestMain(m *testing.M) {
	if os.Getenv("TDXL_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func tdxl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const vectors = "../../verifier/testdata/vectors/"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyRawFiles(t *testing.T) {
	strict := writeFile(t, "strict.yaml", "apiVersion: tdxl/v1\ntdx: {}\nsevSnp: {}\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--quote", vectors + "dcapqvl-tdx-quote4/quote.bin", "--collateral", vectors + "dcapqvl-tdx-quote4/collateral", "--at", "2025-07-01T00:00:00Z"}, 0, `"verdict": "verified"`},
		{[]string{"--quote", vectors + "gotdx-tdx-quote4-spr-e4/quote.bin", "--collateral", vectors + "gotdx-tdx-quote4-spr-e4/collateral", "--at", "2023-07-01T01:00:00Z"}, 2, "TCB level not supported"},
		{[]string{"--quote", vectors + "gotdx-tdx-quote4-gce-ccel/quote.bin", "--collateral", vectors + "gotdx-tdx-quote4-gce-ccel/collateral", "--at", "2024-08-01T00:00:00Z"}, 3, "collateral unavailable"},
		{[]string{"--report", vectors + "trustee-snp-report-milan-vlek/report.bin", "--certs", vectors + "trustee-snp-report-milan-vlek", "--at", "2025-06-01T00:00:00Z"}, 0, `"tee": "sev-snp"`},
		{[]string{"--report", vectors + "gosev-snp-report-milan-debug/report.bin", "--certs", vectors + "gosev-snp-report-milan-debug", "--at", "2022-10-01T00:00:00Z"}, 2, "debug"},
	}
	for _, c := range cases {
		code, out, errs := tdxl(t, append(append([]string{"verify"}, c.args...), "--policy", strict, "--json")...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s", c.args, code, c.code, out, errs)
		}
		var rep verifier.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Errorf("stdout is not one JSON report: %v", err)
		}
	}
}

// The real process's stdout holds the JSON report and nothing else (go-tdx-guest logs to stdout).
func TestJSONStdoutIsClean(t *testing.T) {
	strict := writeFile(t, "strict.yaml", "apiVersion: tdxl/v1\ntdx: {}\n")
	for _, q := range []string{"dcapqvl-tdx-quote4", "gotdx-tdx-quote4-spr-e4"} {
		cmd := exec.Command(os.Args[0], "verify", "--quote", vectors+q+"/quote.bin", "--collateral", vectors+q+"/collateral",
			"--at", "2025-07-01T00:00:00Z", "--policy", strict, "--json")
		cmd.Env = append(os.Environ(), "TDXL_TEST_MAIN=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		dec := json.NewDecoder(&out)
		var rep verifier.Report
		if err := dec.Decode(&rep); err != nil || rep.Verdict == "" {
			t.Fatalf("%s: stdout is not JSON: %v\n%s", q, err, out.String())
		}
		if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) != 0 || out.Len() != 0 {
			t.Fatalf("%s: extra bytes on stdout: %q", q, rest)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"verify", "https://127.0.0.1:1"},
		{"verify", "--quote", "x", "--at", "yesterday", "--policy", "../../deploy/policies/tdx-strict.yaml"},
		{"verify", "https://a:1", "https://b:1", "--policy", "../../deploy/policies/tdx-strict.yaml"},
		{"verify", "https://a:1", "--policy", "../../policy/testdata/bad/unknown-key.yaml"},
		{"curl", "--policy", "../../deploy/policies/tdx-strict.yaml"},
		{"curl", "http://a:1/x", "--policy", "../../deploy/policies/tdx-strict.yaml"},
		{"policy"},
		{"policy", "lint"},
	}
	for _, c := range cases {
		code, _, errs := tdxl(t, c...)
		if code != exitUsage || !strings.HasPrefix(errs, "tdxl: error: ") && len(c) > 0 {
			t.Errorf("%v: exit %d, stderr %q", c, code, errs)
		}
		if strings.Count(strings.TrimSpace(errs), "\n") > 2 && len(c) > 0 {
			t.Errorf("%v: error is not one readable line (+hint): %q", c, errs)
		}
	}
}

func TestPolicyLintAndExplain(t *testing.T) {
	examples, _ := filepath.Glob("../../deploy/policies/*.yaml")
	code, out, errs := tdxl(t, append([]string{"policy", "lint"}, examples...)...)
	if code != 0 || strings.Count(out, ": ok") != len(examples) {
		t.Fatalf("lint examples: %d %s %s", code, out, errs)
	}
	code, _, errs = tdxl(t, "policy", "lint", "../../deploy/policies/tdx-strict.yaml", "../../policy/testdata/bad/unknown-key.yaml")
	if code != 1 || !strings.Contains(errs, "unknown-key.yaml:4: unknown key \"rtmr4\"") {
		t.Fatalf("lint bad: %d %q", code, errs)
	}
	if code, _, _ := tdxl(t, "policy", "lint", "--strict", "../../deploy/policies/unattested-dev.yaml"); code != 1 {
		t.Fatal("--strict must fail on warnings")
	}
	code, out, _ = tdxl(t, "policy", "explain", "../../deploy/policies/tdx-strict.yaml")
	if code != 0 || !strings.Contains(out, "debug TDs: refused") || !strings.Contains(out, "TDX module 2.0.08") {
		t.Fatalf("explain: %d %s", code, out)
	}
}

// pod: a real gateway with a simulated TD; its collateral is served by a fake PCCS on loopback.
type pod struct {
	gw       *gatewaytest.Gateway
	tdx      *testtee.TDX
	pccs     string
	root     string
	policy   string
	received chan string
}

func startPod(t *testing.T, unattested bool) *pod {
	t.Helper()
	p := &pod{received: make(chan string, 10)}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"ready"}`) })
	mux.HandleFunc("/images/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		fmt.Fprintf(w, "\x89PNG %s", r.URL.Path)
	})
	mux.HandleFunc("POST /api/text2image", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.received <- string(b)
		w.Header().Set("Content-Type", "application/json")
		u := r.Header.Get("X-Forwarded-Proto") + "://" + r.Header.Get("X-Forwarded-Host") + "/images/abc/0_0.png"
		json.NewEncoder(w).Encode(map[string]any{"id": "abc", "status": "success", "output": []map[string]any{{"url": u}}})
	})
	be := httptest.NewServer(mux)
	t.Cleanup(be.Close)
	var err error
	if p.tdx, err = testtee.NewTDX(testtee.TDXOptions{Seed: []byte(t.Name())}); err != nil {
		t.Fatal(err)
	}
	model := bytes.Repeat([]byte{0x42}, 32)
	ev := attest.NewEvent(0, attest.EventModel, model, "stabilityai/sdxl-turbo")
	var d [48]byte
	copy(d[:], ev.Digest)
	p.tdx.Extend(3, d)
	var iss attest.Issuer = p.tdx
	if unattested {
		iss = none{}
	}
	p.gw = gatewaytest.Start(t, gatewaytest.Options{Backend: be.URL, Issuer: iss,
		Runtime: gateway.Runtime{Events: []attest.Event{ev}, Extended: !unattested}})
	g := p.tdx.Getter()
	pccs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := verifier.IntelPCS + r.URL.RequestURI()
		if r.URL.Path == "/sgx/certification/v4/rootcacrl" {
			_, body, err := g.Get(testtee.RootCRLURL)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, hex.EncodeToString(body)) // PCCS serves it hex-encoded
			return
		}
		h, body, err := g.Get(u)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Write(body)
	}))
	t.Cleanup(pccs.Close)
	p.pccs = pccs.URL
	p.root = writeFile(t, "simulated-root.pem", string(p.tdx.RootPEM()))
	b := p.tdx.Body([64]byte{})
	p.policy = writeFile(t, "pod.yaml", fmt.Sprintf("apiVersion: tdxl/v1\ntdx:\n  mrtd: [%x]\n  rtmr1: [%x]\n  rtmr2: [%x]\n  mrseam: [%x]\nruntime:\n  models: [\"stabilityai/sdxl-turbo@sha256:%x\"]\n",
		b.MrTd, b.Rtmrs[1], b.Rtmrs[2], b.MrSeam, model))
	return p
}

type none struct{}

func (none) TEE() attest.TEE { return attest.TEENone }
func (none) Issue(context.Context, [64]byte) (*attest.Evidence, error) {
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEENone, Unattested: true, Time: timeNow()}, nil
}

func (p *pod) flags() []string {
	return []string{"--policy", p.policy, "--trust-root", p.root, "--pccs", p.pccs}
}

func TestVerifyOnlineBundleAndDerive(t *testing.T) {
	p := startPod(t, false)
	bundle := filepath.Join(t.TempDir(), "b.json")
	code, out, errs := tdxl(t, append([]string{"verify", p.gw.URL, "--save-bundle", bundle}, p.flags()...)...)
	if code != 0 || !strings.Contains(out, "verdict: VERIFIED") || !strings.Contains(out, "tdx.mrtd") || !strings.Contains(errs, "NOT Intel") {
		t.Fatalf("verify: %d\n%s\n%s", code, out, errs)
	}
	// Without the simulated root: refused (exit 2).
	if code, _, errs := tdxl(t, "verify", p.gw.URL, "--policy", p.policy, "--pccs", p.pccs); code != 2 || !strings.Contains(errs, "trusted root") {
		t.Fatalf("without --trust-root: %d %s", code, errs)
	}
	// Offline re-verification of the bundle.
	if code, out, errs := tdxl(t, "verify", "--offline", bundle, "--trust-root", p.root, "--json"); code != 0 || !strings.Contains(out, `"verdict": "verified"`) {
		t.Fatalf("offline: %d %s %s", code, out, errs)
	}
	if code, _, _ := tdxl(t, "verify", "--offline", bundle); code != 2 {
		t.Fatal("offline bundle without trust root must be refused")
	}
	// derive from the bundle and from the URL: the derived policy accepts the pod.
	for _, src := range [][]string{{"--from-bundle", bundle, "--trust-root", p.root}, {p.gw.URL, "--trust-root", p.root, "--pccs", p.pccs}} {
		code, out, errs := tdxl(t, append([]string{"policy", "derive"}, src...)...)
		if code != 0 || !strings.Contains(out, "OBSERVED values, NOT PROVEN") {
			t.Fatalf("derive %v: %d %s %s", src, code, out, errs)
		}
		dp, err := policy.Parse("derived.yaml", []byte(out))
		if err != nil {
			t.Fatalf("derived policy does not parse: %v\n%s", err, out)
		}
		if len(dp.TDX.MRTD) != 1 || len(dp.Runtime.Models) != 1 || !dp.Runtime.RTMRBound() {
			t.Fatalf("derived policy: %s", out)
		}
		path := writeFile(t, "derived.yaml", out)
		if code, _, errs := tdxl(t, "verify", p.gw.URL, "--policy", path, "--trust-root", p.root, "--pccs", p.pccs); code != 0 {
			t.Fatalf("derived policy refuses the pod: %s", errs)
		}
	}
}

func TestCurlThroughPinnedConnection(t *testing.T) {
	p := startPod(t, false)
	dir := t.TempDir()
	outFile := filepath.Join(dir, "resp.json")
	imgDir := filepath.Join(dir, "images")
	req := writeFile(t, "req.json", `{"prompt": "a panda", "number": 1}`)
	code, out, errs := tdxl(t, append([]string{"curl", "--data-binary", "@" + req, "-H", "Content-Type: application/json",
		p.gw.URL + "/api/text2image", "-o", outFile, "--save-images", imgDir}, p.flags()...)...)
	if code != 0 {
		t.Fatalf("curl: %d\n%s\n%s", code, out, errs)
	}
	if got := <-p.received; got != `{"prompt": "a panda", "number": 1}` {
		t.Fatalf("backend got %q", got)
	}
	body, _ := os.ReadFile(outFile)
	if !bytes.Contains(body, []byte(`"receipt"`)) || !strings.Contains(errs, "receipt verified") || !strings.Contains(errs, "tdxl: verified:") {
		t.Fatalf("receipt/summary missing:\n%s\n%s", body, errs)
	}
	img, err := os.ReadFile(filepath.Join(imgDir, "images_abc_0_0.png"))
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Fatalf("image not saved: %v", err)
	}
	// A policy the pod does not satisfy: nothing is sent.
	bad := writeFile(t, "bad.yaml", "apiVersion: tdxl/v1\ntdx:\n  mrtd: ["+strings.Repeat("00", 48)+"]\n")
	code, _, errs = tdxl(t, "curl", "-d", `{"prompt":"secret"}`, p.gw.URL+"/api/text2image", "--policy", bad, "--trust-root", p.root, "--pccs", p.pccs)
	if code != 2 || len(p.received) != 0 || !strings.Contains(errs, "tdx.mrtd") {
		t.Fatalf("refused curl: %d, %d requests reached the backend, %s", code, len(p.received), errs)
	}
}

func TestCurlUnattested(t *testing.T) {
	p := startPod(t, true)
	args := []string{"curl", "-d", `{"prompt":"x"}`, p.gw.URL + "/api/text2image", "--policy", p.policy}
	code, _, errs := tdxl(t, args...)
	if code != 2 || len(p.received) != 0 || !strings.Contains(errs, "unattested") {
		t.Fatalf("unattested without opt-in: %d %s", code, errs)
	}
	code, out, errs := tdxl(t, append(args, "--allow-unattested", "-s")...)
	if code != 0 || !strings.Contains(errs, "WARNING") || !strings.Contains(out, "abc") {
		t.Fatalf("unattested with opt-in: %d %s %s", code, out, errs)
	}
	code, out, _ = tdxl(t, "verify", p.gw.URL, "--policy", p.policy, "--allow-unattested", "--json")
	if code != 0 || !strings.Contains(out, `"attested": false`) {
		t.Fatalf("verify --json unattested: %s", out)
	}
}

func timeNow() time.Time { return time.Now().UTC() }
