package gateway_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/measure"
	"github.com/tdxl/tdxl/attest/testtee"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
)

// writeFiles creates a fake model folder and fake binaries.
func writeFiles(t *testing.T) (modelDir, backendBin, gatewayBin string) {
	dir := t.TempDir()
	modelDir = filepath.Join(dir, "model")
	for name, content := range map[string]string{
		"model_index.json":                         `{"_class_name":"StableDiffusionXLPipeline"}`,
		"unet/config.json":                         `{"sample_size":8}`,
		"unet/diffusion_pytorch_model.safetensors": "weights",
	} {
		p := filepath.Join(modelDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	backendBin, gatewayBin = filepath.Join(dir, "tdxl-backend"), filepath.Join(dir, "tdxl-gateway")
	os.WriteFile(backendBin, []byte("backend binary"), 0o755)
	os.WriteFile(gatewayBin, []byte("gateway binary"), 0o755)
	return
}

// TestSimulatedTDXEventLogReplaysToQuotedRTMR3: with the simulated TD, the
// gateway measures model, binaries and config into RTMR3; the evidence's
// quote passes go-tdx-guest's real verification under the test root, its
// REPORTDATA binds the served key and nonce, and its event log replays to
// the quote's RTMR3.
func TestSimulatedTDXEventLogReplaysToQuotedRTMR3(t *testing.T) {
	td, err := testtee.NewTDX(testtee.TDXOptions{Seed: []byte("gateway test")})
	if err != nil {
		t.Fatal(err)
	}
	modelDir, backendBin, gatewayBin := writeFiles(t)
	be := newFakeBackend(t)
	var measured gateway.Runtime
	gw := gatewaytest.Start(t, gatewaytest.Options{Backend: be.URL, Issuer: td.Issuer(),
		Configure: func(c *gateway.Config) {
			c.Measure = func(ctx context.Context) (gateway.Runtime, error) {
				rt, err := gateway.MeasureRuntime(ctx, gateway.MeasureOptions{
					ModelDir: modelDir, BackendBinary: backendBin, GatewayBinary: gatewayBin,
					Config: c.Effective(modelDir), Extender: td, Logger: c.Logger})
				measured = rt
				return rt, err
			}
		}})
	nonce := bytes.Repeat([]byte{0xc3}, 24)
	resp, body := getEvidence(t, gw.Client(), gw.URL+gateway.EvidencePath+"?nonce="+hex.EncodeToString(nonce))
	ev := mustOpen(t, resp, body)
	if ev.TEE != attest.TEETDX || !ev.RTMRExtended || len(ev.EventLog) != 4 {
		t.Fatalf("evidence: tee %s extended %v (%s), %d events", ev.TEE, ev.RTMRExtended, ev.RTMRStatus, len(ev.EventLog))
	}
	wantTypes := []attest.EventType{attest.EventModel, attest.EventBackendBinary, attest.EventGatewayBinary, attest.EventConfig}
	for i, e := range ev.EventLog {
		if e.Type != wantTypes[i] {
			t.Fatalf("event %d is %s, want %s", i, e.Type, wantTypes[i])
		}
	}
	man, err := measure.ModelManifest(context.Background(), modelDir, measure.ManifestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := man.Digest(); !bytes.Equal(ev.EventLog[0].Measurement, d[:]) || !bytes.Equal(gw.G.Runtime().ModelDigest(), d[:]) {
		t.Fatal("model event is not the manifest digest")
	}
	if bd, _ := measure.FileDigest(context.Background(), backendBin); !bytes.Equal(ev.EventLog[1].Measurement, bd[:]) {
		t.Fatal("backend binary digest")
	}
	if len(measured.Events) != 4 {
		t.Fatal("Measure result not used")
	}

	// The real go-tdx-guest verification accepts the quote under the test root.
	opts := &verify.Options{TrustedRoots: td.RootPool(), Getter: td.Getter(), GetCollateral: true, CheckRevocations: true}
	now := time.Now()
	opts.Now = &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}
	if err := verify.RawTdxQuote(ev.Quote, opts); err != nil {
		t.Fatalf("go-tdx-guest refuses the simulated quote: %v", err)
	}
	q, err := abi.QuoteToProto(ev.Quote)
	if err != nil {
		t.Fatal(err)
	}
	body4 := q.(*pb.QuoteV4).GetTdQuoteBody()
	rd := attest.ReportData(resp.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo, nonce)
	if !bytes.Equal(body4.GetReportData(), rd[:]) {
		t.Fatal("quote REPORTDATA is not ReportData(served SPKI, nonce)")
	}
	replay := attest.ReplayRTMR(ev.EventLog)
	if !bytes.Equal(body4.GetRtmrs()[3], replay[:]) {
		t.Fatalf("RTMR3 %x, event log replays to %x", body4.GetRtmrs()[3], replay)
	}
	// A log with one event dropped no longer replays.
	short := attest.ReplayRTMR(ev.EventLog[1:])
	if bytes.Equal(body4.GetRtmrs()[3], short[:]) {
		t.Fatal("replay is insensitive to the log")
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Without an extender the events are recorded but marked not extended.
func TestMeasureWithoutRTMRSaysNotExtended(t *testing.T) {
	modelDir, backendBin, gatewayBin := writeFiles(t)
	rt, err := gateway.MeasureRuntime(context.Background(), gateway.MeasureOptions{
		ModelDir: modelDir, BackendBinary: backendBin, GatewayBinary: gatewayBin, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Extended || rt.Status == "" || len(rt.Events) != 3 {
		t.Fatalf("%+v", rt)
	}
	if _, err := gateway.MeasureRuntime(context.Background(), gateway.MeasureOptions{ModelDir: filepath.Join(modelDir, "missing"), GatewayBinary: gatewayBin, Logger: discard}); err == nil {
		t.Fatal("missing model dir accepted")
	}
}
