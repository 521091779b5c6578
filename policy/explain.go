package policy

import (
	"fmt"
	"io"
	"strings"
)

// Explain writes, in plain words, what the policy accepts and refuses.
func Explain(w io.Writer, p *Policy) error {
	var b strings.Builder
	name := p.Name
	if name == "" {
		name = p.Source
	}
	fmt.Fprintf(&b, "policy %s (%s)\n", name, p.APIVersion)
	var tees []string
	for _, t := range []string{TEETDX, TEESEVSNP} {
		if p.Accepts(t) {
			tees = append(tees, t)
		}
	}
	if len(tees) == 0 {
		b.WriteString("- accepts no TEE\n")
	} else {
		fmt.Fprintf(&b, "- accepts TEE evidence of kind: %s\n", strings.Join(tees, ", "))
	}
	if p.AllowUnattested {
		b.WriteString("- ALLOWS unattested servers (with a warning on every call)\n")
	} else {
		b.WriteString("- refuses unattested servers\n")
	}
	if len(p.TrustRoots) > 0 {
		fmt.Fprintf(&b, "- trusts extra quote-signing roots: %s\n", strings.Join(p.TrustRoots, ", "))
	}
	if p.Accepts(TEETDX) {
		t := p.TDXRules()
		b.WriteString("TDX:\n")
		list(&b, "MRTD", t.MRTD)
		list(&b, "RTMR0", t.RTMR0)
		list(&b, "RTMR1", t.RTMR1)
		list(&b, "RTMR2", t.RTMR2)
		list(&b, "MRSEAM", t.MRSEAM)
		list(&b, "MRCONFIGID", t.MRConfigID)
		if t.AllowDebug {
			b.WriteString("  - debug TDs: ACCEPTED\n")
		} else {
			b.WriteString("  - debug TDs: refused\n")
		}
		if m := t.TDAttributes; m != nil {
			fmt.Fprintf(&b, "  - TD_ATTRIBUTES & %s must equal %s\n", maskOrAll(m), m.Value)
		}
		if m := t.XFAM; m != nil {
			fmt.Fprintf(&b, "  - XFAM & %s must equal %s\n", maskOrAll(m), m.Value)
		}
		if t.MinTEETCBSVN != nil {
			fmt.Fprintf(&b, "  - TEE_TCB_SVN at least %s (component-wise)\n", t.MinTEETCBSVN)
		}
		fmt.Fprintf(&b, "  - TCB statuses accepted: %s\n", strings.Join(t.TCB.Accepted(), ", "))
		if len(t.TCB.AllowedAdvisories) > 0 {
			fmt.Fprintf(&b, "  - advisories allowed: %s (any other refuses)\n", strings.Join(t.TCB.AllowedAdvisories, ", "))
		}
		if t.TCB.MinTCBEvaluationDataNumber > 0 {
			fmt.Fprintf(&b, "  - collateral from TCB evaluation round %d or later\n", t.TCB.MinTCBEvaluationDataNumber)
		}
		if t.TCB.MaxCollateralAge > 0 {
			fmt.Fprintf(&b, "  - collateral issued at most %s before verification\n", t.TCB.MaxCollateralAge.D())
		}
		if t.TCB.AllowMissingCRLs {
			b.WriteString("  - revocation: checked when CRLs are available, skipped otherwise\n")
		} else {
			b.WriteString("  - revocation: PCK and root CA CRLs required\n")
		}
		if t.TCB.AllowNoCollateral {
			b.WriteString("  - quotes without any collateral: ACCEPTED (TCB unknown)\n")
		}
	}
	if p.Accepts(TEESEVSNP) {
		s := p.SNPRules()
		b.WriteString("SEV-SNP:\n")
		list(&b, "MEASUREMENT", s.Measurements)
		list(&b, "HOST_DATA", s.HostData)
		if s.AllowDebug {
			b.WriteString("  - debug guests: ACCEPTED\n")
		} else {
			b.WriteString("  - debug guests: refused\n")
		}
		if s.MinTCB != nil {
			fmt.Fprintf(&b, "  - REPORTED_TCB at least bl=%d tee=%d snp=%d ucode=%d\n", s.MinTCB.BootLoader, s.MinTCB.TEE, s.MinTCB.SNP, s.MinTCB.Microcode)
		}
		if s.VMPL != nil {
			fmt.Fprintf(&b, "  - VMPL must be %d\n", *s.VMPL)
		}
	}
	b.WriteString("runtime (RTMR3 event log):\n")
	if p.Runtime.RTMRBound() {
		b.WriteString("  - claims must replay to RTMR3\n")
	} else {
		b.WriteString("  - claims need NOT be bound to RTMR3 (the pod's own word)\n")
	}
	digests(&b, "models", p.Runtime.Models)
	digests(&b, "backend binaries", p.Runtime.Backends)
	digests(&b, "gateway binaries", p.Runtime.Gateways)
	digests(&b, "configurations", p.Runtime.Configs)
	b.WriteString("freshness:\n")
	if p.Freshness.NonceRequired() {
		b.WriteString("  - a fresh client nonce must be in REPORTDATA\n")
	} else {
		b.WriteString("  - no nonce required (cached evidence accepted)\n")
	}
	if p.Freshness.MaxEvidenceAge > 0 {
		fmt.Fprintf(&b, "  - evidence at most %s old\n", p.Freshness.MaxEvidenceAge.D())
	}
	for _, w := range Lint(p) {
		fmt.Fprintf(&b, "%s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func maskOrAll(m *Masked) string {
	if m.Mask == nil {
		return "ffffffffffffffff"
	}
	return m.Mask.String()
}

func list(b *strings.Builder, what string, ms []Measurement) {
	if len(ms) == 0 {
		fmt.Fprintf(b, "  - %s: any (not checked)\n", what)
		return
	}
	fmt.Fprintf(b, "  - %s: one of\n", what)
	for _, m := range ms {
		if m.Name != "" {
			fmt.Fprintf(b, "      %s  (%s)\n", m.Value, m.Name)
		} else {
			fmt.Fprintf(b, "      %s\n", m.Value)
		}
	}
}

func digests(b *strings.Builder, what string, ds []Digest) {
	if len(ds) == 0 {
		fmt.Fprintf(b, "  - %s: any (not checked)\n", what)
		return
	}
	fmt.Fprintf(b, "  - %s: one of\n", what)
	for _, d := range ds {
		fmt.Fprintf(b, "      %s @ sha256:%s\n", d.Name, d.Digest)
	}
}
