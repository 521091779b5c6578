// Package sevtest is the SEV-SNP counterpart of testtee: attestation
// reports signed under go-sev-guest's test-only AMD chain
// (testing.DefaultTestOnlyCertChain / AmdSigner) and a fake AMD KDS, so the
// real go-sev-guest verify accepts them with TrustedRoots() and rejects them
// against AMD's roots.
//
// Unlike package testtee it imports net/http (transitively, through
// go-sev-guest's testing and verify/trust packages) and the standard
// "testing" package; it is meant for tests only.
package sevtest

import (
	"context"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtesting "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/tdxl/tdxl/attest"
)

// Milan's CPUID(1).EAX, reported in version-3 reports so verifiers know the product line.
const milanFMS = 0x00a00f10

// Options configure a simulated SEV-SNP guest. nil byte slices take defaults.
type Options struct {
	// Now is the clock (certificate creation and Evidence.Time). nil = time.Now.
	Now func() time.Time
	// Measurement (48 bytes). nil = SHA-384("tdxl/sevtest measurement").
	Measurement []byte
	// HostData (32 bytes). nil = zeros.
	HostData []byte
	// Debug sets the guest policy's DEBUG bit.
	Debug bool
	// VMPL the report was requested at (0..3).
	VMPL uint32
	// GuestSVN of the report.
	GuestSVN uint32
}

// SNP is a simulated SEV-SNP guest (Milan).
type SNP struct {
	opts    Options
	signer  *sevtesting.AmdSigner
	certs   []byte
	product *spb.SevProduct
}

// New builds the signer (go-sev-guest's fixed test keys) and certificate table.
func New(opts Options) (*SNP, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Measurement == nil {
		h := sha512.Sum384([]byte("tdxl/sevtest measurement"))
		opts.Measurement = h[:]
	}
	if opts.HostData == nil {
		opts.HostData = make([]byte, 32)
	}
	if len(opts.Measurement) != 48 || len(opts.HostData) != 32 || opts.VMPL > 3 {
		return nil, fmt.Errorf("sevtest: bad options (measurement %d bytes, host data %d bytes, vmpl %d)",
			len(opts.Measurement), len(opts.HostData), opts.VMPL)
	}
	product := abi.SevProductFromCpuid1Eax(milanFMS)
	signer, err := sevtesting.DefaultTestOnlyCertChain(kds.ProductName(product), opts.Now().Add(-24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("sevtest: building AMD test chain: %w", err)
	}
	signer.Product = product
	certs, err := signer.CertTableBytes()
	if err != nil {
		return nil, fmt.Errorf("sevtest: certificate table: %w", err)
	}
	return &SNP{opts: opts, signer: signer, certs: certs, product: product}, nil
}

// Report returns a signed raw attestation report (abi.ReportSize bytes).
func (s *SNP) Report(reportData [64]byte) ([]byte, error) {
	raw := sevtesting.CreateRawReport(&sevtesting.TestReportOptions{ReportData: reportData[:], Version: 3, FMS: milanFMS})
	r := raw[:abi.ReportSize]
	binary.LittleEndian.PutUint32(r[0x04:0x08], s.opts.GuestSVN)
	binary.LittleEndian.PutUint64(r[0x08:0x10], abi.SnpPolicyToBytes(abi.SnpPolicy{SMT: true, Debug: s.opts.Debug}))
	binary.LittleEndian.PutUint32(r[0x30:0x34], s.opts.VMPL)
	copy(r[0x90:0xC0], s.opts.Measurement)
	copy(r[0xC0:0xE0], s.opts.HostData)
	R, S, err := s.signer.Sign(abi.SignedComponent(r))
	if err != nil {
		return nil, fmt.Errorf("sevtest: signing report: %w", err)
	}
	if err := abi.SetSignature(R, S, r); err != nil {
		return nil, fmt.Errorf("sevtest: %w", err)
	}
	return append([]byte(nil), r...), nil
}

// TEE returns attest.TEESEVSNP.
func (s *SNP) TEE() attest.TEE { return attest.TEESEVSNP }

// Issue returns SEV-SNP evidence: the signed report and the certificate table.
func (s *SNP) Issue(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := s.Report(reportData)
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEESEVSNP, Quote: r,
		Certs: append([]byte(nil), s.certs...), Time: s.opts.Now().UTC()}, nil
}

// CertTable returns the GHCB certificate table (ARK, ASK, VCEK, ...).
func (s *SNP) CertTable() []byte { return append([]byte(nil), s.certs...) }

// Product returns the simulated product (Milan), for verify.Options.Product.
func (s *SNP) Product() *spb.SevProduct { return s.product }

// Signer returns the underlying go-sev-guest test signer.
func (s *SNP) Signer() *sevtesting.AmdSigner { return s.signer }

// TrustedRoots returns the test ARK/ASK as go-sev-guest verify.Options.TrustedRoots.
func (s *SNP) TrustedRoots() map[string][]*trust.AMDRootCerts {
	line := kds.ProductLine(s.product)
	return map[string][]*trust.AMDRootCerts{line: {{
		Product:     line,
		ProductLine: line,
		ProductCerts: &trust.ProductCerts{
			Ark: s.signer.Ark, Ask: s.signer.Ask, Asvk: s.signer.Asvk,
		},
	}}}
}

// Getter returns a fake AMD KDS serving the test VCEK and chain
// (go-sev-guest trust.HTTPSGetter).
func (s *SNP) Getter() (trust.HTTPSGetter, error) {
	k, err := sevtesting.FakeKDSFromSigner(s.signer)
	if err != nil {
		return nil, fmt.Errorf("sevtest: fake KDS: %w", err)
	}
	return k, nil
}
