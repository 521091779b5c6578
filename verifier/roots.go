package verifier

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	sevtrust "github.com/google/go-sev-guest/verify/trust"
)

// intelRootPEM is Intel's "Intel SGX Root CA" (valid 2018-05-21 .. 2049-12-31, SHA-256 fingerprint
// 44:A0:19:6B:...:74:D3), identical to go-tdx-guest's embedded copy. We pass it explicitly so the
// library never falls back to its own copy (and never prints its warning on stdout).
//
//go:embed roots/intel_sgx_root_ca.pem
var intelRootPEM []byte

// milanASVKPEM is AMD's VLEK chain for Milan (SEV-VLEK-Milan, ARK-Milan) as served by AMD KDS
// (https://kdsintf.amd.com/vlek/v1/Milan/cert_chain). go-sev-guest v0.15.0 embeds no ASVK.
//
//go:embed roots/amd_milan_asvk_ark.pem
var milanASVKPEM []byte

// Roots are the trust anchors for quote and report signatures.
type Roots struct {
	// TDX holds the roots a PCK chain may lead to ("Intel SGX Root CA" and any added test roots).
	TDX *x509.CertPool
	// SNP maps an AMD product line ("Milan") to acceptable ARK/AS(V)K chains.
	SNP map[string][]*sevtrust.AMDRootCerts
	// Names describes each root for reports, e.g. "Intel SGX Root CA (embedded)".
	Names []string
	// tdxCerts lets reports say which root verified a chain.
	tdxCerts []*x509.Certificate
	snpAdded map[*sevtrust.AMDRootCerts]bool
	custom   bool
}

// DefaultRoots returns Intel's SGX root and AMD's ARK/ASK (Milan, Genoa, Turin) plus the Milan ASVK.
func DefaultRoots() *Roots {
	r := &Roots{TDX: x509.NewCertPool(), SNP: map[string][]*sevtrust.AMDRootCerts{}}
	block, _ := pem.Decode(intelRootPEM)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("verifier: embedded Intel root: " + err.Error())
	}
	r.TDX.AddCert(c)
	r.tdxCerts = append(r.tdxCerts, c)
	r.Names = append(r.Names, "Intel SGX Root CA (embedded)")
	for _, line := range []string{"Milan", "Genoa", "Turin"} {
		if d, err := sevtrust.GetDefaultRootCerts(line); err == nil {
			r.SNP[line] = append(r.SNP[line], d)
		}
	}
	asvk := sevtrust.AMDRootCertsProduct("Milan")
	if err := asvk.FromKDSCertBytes(milanASVKPEM); err != nil {
		panic("verifier: embedded Milan ASVK: " + err.Error())
	}
	r.SNP["Milan"] = append(r.SNP["Milan"], asvk)
	r.Names = append(r.Names, "AMD ARK Milan/Genoa/Turin (embedded)")
	return r
}

// Custom reports whether roots beyond the vendors' were added (test TEE, private PKI).
func (r *Roots) Custom() bool { return r.custom }

// AddPEMFile adds the roots in a PEM file; see AddPEM.
func (r *Roots) AddPEMFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading trust root: %w", err)
	}
	if err := r.AddPEM(b, path); err != nil {
		return fmt.Errorf("trust root %s: %w", path, err)
	}
	return nil
}

// AddPEM adds extra roots. A self-signed certificate named like an Intel root becomes a TDX root;
// an AMD-style pair (AS[V]K then ARK) becomes an SNP root for the product line in its CN
// ("ARK-Milan" -> Milan). Anything else is an error. label names the source in reports.
func (r *Roots) AddPEM(data []byte, label string) error {
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fmt.Errorf("parsing certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return errors.New("no PEM certificate found")
	}
	if len(certs) == 2 && strings.HasPrefix(certs[1].Subject.CommonName, "ARK-") {
		line := strings.TrimPrefix(certs[1].Subject.CommonName, "ARK-")
		ar := sevtrust.AMDRootCertsProduct(line)
		if err := ar.FromKDSCertBytes(data); err != nil {
			return fmt.Errorf("AMD chain: %w", err)
		}
		r.SNP[line] = append(r.SNP[line], ar)
		r.markSNP(ar)
		r.Names = append(r.Names, fmt.Sprintf("%s (%s, added)", certs[1].Subject.CommonName, label))
		r.custom = true
		return nil
	}
	for _, c := range certs {
		if !c.IsCA || c.CheckSignatureFrom(c) != nil {
			return fmt.Errorf("certificate %q is not a self-signed CA", c.Subject.CommonName)
		}
		r.TDX.AddCert(c)
		r.tdxCerts = append(r.tdxCerts, c)
		r.Names = append(r.Names, fmt.Sprintf("%s (%s, added)", c.Subject.CommonName, label))
	}
	r.custom = true
	return nil
}

// AddSNP adds an AMD root chain (test signers).
func (r *Roots) AddSNP(line string, root *sevtrust.AMDRootCerts, label string) {
	r.SNP[line] = append(r.SNP[line], root)
	r.markSNP(root)
	r.Names = append(r.Names, label)
	r.custom = true
}

// describeTDXRoot names the root that chain's last certificate matches.
func (r *Roots) describeTDXRoot(root *x509.Certificate) string {
	for i, c := range r.tdxCerts {
		if c.Equal(root) {
			if i == 0 {
				return "Intel SGX Root CA (embedded)"
			}
			return fmt.Sprintf("%s (added trust root, NOT Intel)", c.Subject.CommonName)
		}
	}
	return root.Subject.CommonName
}

func (r *Roots) markSNP(ar *sevtrust.AMDRootCerts) {
	if r.snpAdded == nil {
		r.snpAdded = map[*sevtrust.AMDRootCerts]bool{}
	}
	r.snpAdded[ar] = true
}

// describeSNPRoot names the AMD root whose AS(V)K issued the endorsement certificate.
func (r *Roots) describeSNPRoot(cert *x509.Certificate) string {
	for line, list := range r.SNP {
		for _, ar := range list {
			pc := ar.ProductCerts
			if pc == nil || pc.Ark == nil {
				continue
			}
			for _, ica := range []*x509.Certificate{pc.Ask, pc.Asvk} {
				if ica != nil && cert.CheckSignatureFrom(ica) == nil {
					if r.snpAdded[ar] {
						return fmt.Sprintf("%s %s (added trust root, NOT AMD)", pc.Ark.Subject.CommonName, line)
					}
					return fmt.Sprintf("AMD %s via %s (embedded)", pc.Ark.Subject.CommonName, ica.Subject.CommonName)
				}
			}
		}
	}
	return "AMD ARK via " + cert.Issuer.CommonName
}
