package verifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sevabi "github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
	sevtrust "github.com/google/go-sev-guest/verify/trust"
	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway"
	"github.com/tdxl/tdxl/gateway/gatewaytest"
	"github.com/tdxl/tdxl/policy"
)

// snpIssuer issues SEV-SNP evidence signed by go-sev-guest's fake AMD signer (test-only keys).
type snpIssuer struct {
	signer      *sevtest.AmdSigner
	debug       bool
	measurement []byte
	tamper      bool
}

func (s *snpIssuer) TEE() attest.TEE { return attest.TEESEVSNP }

func (s *snpIssuer) Issue(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	r := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: rd[:], SignerInfo: sevabi.SignerInfo{SigningKey: sevabi.VcekReportSigner}})
	report := r[:sevabi.ReportSize]
	binary.LittleEndian.PutUint64(report[0x08:], sevabi.SnpPolicyToBytes(sevabi.SnpPolicy{Debug: s.debug, SMT: true}))
	copy(report[0x90:0xC0], s.measurement)
	binary.LittleEndian.PutUint64(report[0x180:], uint64(s.signer.TCB))
	copy(report[0x1A0:0x1E0], s.signer.HWID[:])
	rr, ss, err := s.signer.Sign(sevabi.SignedComponent(report))
	if err != nil {
		return nil, err
	}
	if err := sevabi.SetSignature(rr, ss, report); err != nil {
		return nil, err
	}
	if s.tamper {
		report[0x90] ^= 1
	}
	table, err := s.signer.CertTableBytes()
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEESEVSNP, Quote: append([]byte(nil), report...), Certs: table, Time: time.Now().UTC()}, nil
}

func TestE2ESEVSNP(t *testing.T) {
	signer, err := sevtest.DefaultTestOnlyCertChain(sevtest.GetProductName(), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	measurement := bytes.Repeat([]byte{0x5e}, 48)
	model := bytes.Repeat([]byte{0x11}, 32)
	roots := DefaultRoots()
	roots.AddSNP("Milan", &sevtrust.AMDRootCerts{ProductLine: "Milan", ProductCerts: &sevtrust.ProductCerts{Ask: signer.Ask, Ark: signer.Ark, Asvk: signer.Asvk}}, "go-sev-guest test ARK")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"status":"ready"}`) }))
	defer be.Close()
	pol, err := policy.Parse("snp.yaml", []byte(fmt.Sprintf("apiVersion: tdxl/v1\nsevSnp:\n  measurements: [%s]\n  vmpl: 0\nruntime:\n  requireRTMRBound: false\n  models: [m@%s]\n",
		hex.EncodeToString(measurement), hex.EncodeToString(model))))
	if err != nil {
		t.Fatal(err)
	}
	start := func(iss *snpIssuer) *gatewaytest.Gateway {
		return gatewaytest.Start(t, gatewaytest.Options{Backend: be.URL, Issuer: iss,
			Runtime: gateway.Runtime{Events: []attest.Event{attest.NewEvent(0, attest.EventModel, model, "m")}, Status: "SEV-SNP has no RTMRs"}})
	}
	cases := []struct {
		name   string
		iss    *snpIssuer
		roots  *Roots
		reason error
	}{
		{"accept", &snpIssuer{signer: signer, measurement: measurement}, roots, nil},
		{"debug guest", &snpIssuer{signer: signer, measurement: measurement, debug: true}, roots, ErrDebug},
		{"wrong measurement", &snpIssuer{signer: signer, measurement: bytes.Repeat([]byte{1}, 48)}, roots, ErrMeasurement},
		{"tampered report", &snpIssuer{signer: signer, measurement: measurement, tamper: true}, roots, ErrQuoteSignature},
		{"test signer without trust root", &snpIssuer{signer: signer, measurement: measurement}, DefaultRoots(), ErrUntrustedRoot},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw := start(c.iss)
			s, err := Connect(context.Background(), gw.URL, pol, OnlineOptions{Roots: c.roots, Getter: mapGetter{}, Timeout: 10 * time.Second})
			if c.reason == nil {
				if err != nil || s.Report.TEE != "sev-snp" || !strings.Contains(s.Report.Root, "NOT AMD") {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, c.reason) {
				t.Fatalf("want %v, got %v", c.reason, err)
			}
		})
	}
}
