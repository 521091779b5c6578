package policy

import (
	"fmt"
	"strings"
)

// Byte lengths of the measured values.
const (
	LenMR       = 48 // MRTD, RTMRs, MRSEAM, MRCONFIGID, SNP MEASUREMENT
	LenHostData = 32 // SNP HOST_DATA
	LenDigest   = 32 // SHA-256 runtime digests
	LenMask64   = 8  // TD_ATTRIBUTES, XFAM
	LenTCBSVN   = 16 // TEE_TCB_SVN
)

// validate checks everything a schema cannot: version, lengths, enumerations.
func validate(p *Policy) []Problem {
	v := &validator{p: p}
	if p.APIVersion == "" {
		v.add("apiVersion", "missing apiVersion", "add `apiVersion: "+APIVersion+"` as the first line")
	} else if p.APIVersion != APIVersion {
		v.add("apiVersion", fmt.Sprintf("unsupported apiVersion %q", p.APIVersion), "this tdxl reads "+APIVersion)
	}
	for i, t := range p.TEEs {
		if t != TEETDX && t != TEESEVSNP {
			v.add(fmt.Sprintf("tees[%d]", i), fmt.Sprintf("unknown TEE %q", t), "use \"tdx\" or \"sev-snp\"")
		}
	}
	for i, r := range p.TrustRoots {
		if strings.TrimSpace(r) == "" {
			v.add(fmt.Sprintf("trustRoots[%d]", i), "empty trust root path", "")
		}
	}
	if t := p.TDX; t != nil {
		v.measurements("tdx.mrtd", t.MRTD, LenMR)
		v.measurements("tdx.rtmr0", t.RTMR0, LenMR)
		v.measurements("tdx.rtmr1", t.RTMR1, LenMR)
		v.measurements("tdx.rtmr2", t.RTMR2, LenMR)
		v.measurements("tdx.mrseam", t.MRSEAM, LenMR)
		v.measurements("tdx.mrConfigId", t.MRConfigID, LenMR)
		v.masked("tdx.tdAttributes", t.TDAttributes)
		v.masked("tdx.xfam", t.XFAM)
		if t.TDAttributes != nil && !t.AllowDebug && len(t.TDAttributes.Value) == LenMask64 && t.TDAttributes.Value[0]&1 != 0 {
			v.add("tdx.tdAttributes", "tdAttributes requires the DEBUG bit but allowDebug is false", "clear bit 0 of the value or set `allowDebug: true`")
		}
		if t.MinTEETCBSVN != nil && len(t.MinTEETCBSVN) != LenTCBSVN {
			v.add("tdx.minTeeTcbSvn", fmt.Sprintf("minTeeTcbSvn is %d bytes, want %d", len(t.MinTEETCBSVN), LenTCBSVN), "write 32 hex digits")
		}
		for i, s := range t.TCB.AcceptedStatuses {
			if !knownStatus(s) {
				hint := "known statuses: " + strings.Join(KnownTCBStatuses, ", ")
				if s == StatusRevoked {
					hint = "a revoked TCB can never be accepted"
				}
				v.add(fmt.Sprintf("tdx.tcb.acceptedStatuses[%d]", i), fmt.Sprintf("unknown or unacceptable TCB status %q", s), hint)
			}
		}
		for i, a := range t.TCB.AllowedAdvisories {
			if !strings.HasPrefix(a, "INTEL-SA-") {
				v.add(fmt.Sprintf("tdx.tcb.allowedAdvisories[%d]", i), fmt.Sprintf("advisory %q is not an Intel advisory ID", a), "IDs look like INTEL-SA-00837")
			}
		}
		if t.TCB.MinTCBEvaluationDataNumber < 0 {
			v.add("tdx.tcb.minTcbEvaluationDataNumber", "minTcbEvaluationDataNumber is negative", "")
		}
	}
	if s := p.SEVSNP; s != nil {
		v.measurements("sevSnp.measurements", s.Measurements, LenMR)
		v.measurements("sevSnp.hostData", s.HostData, LenHostData)
		if s.VMPL != nil && (*s.VMPL < 0 || *s.VMPL > 3) {
			v.add("sevSnp.vmpl", fmt.Sprintf("vmpl %d out of range", *s.VMPL), "VMPL is 0..3")
		}
	}
	v.digests("runtime.models", p.Runtime.Models)
	v.digests("runtime.backends", p.Runtime.Backends)
	v.digests("runtime.gateways", p.Runtime.Gateways)
	v.digests("runtime.configs", p.Runtime.Configs)
	return v.probs
}

type validator struct {
	p     *Policy
	probs []Problem
}

func (v *validator) add(path, msg, hint string) {
	line := v.p.Line(path)
	for line == 0 && strings.ContainsAny(path, ".[") {
		if i := strings.LastIndexAny(path, ".["); i > 0 {
			path = path[:i]
			line = v.p.Line(path)
		} else {
			break
		}
	}
	v.probs = append(v.probs, Problem{File: v.p.Source, Line: line, Msg: msg, Hint: hint})
}

func (v *validator) measurements(path string, ms []Measurement, n int) {
	seen := map[string]bool{}
	for i, m := range ms {
		p := fmt.Sprintf("%s[%d]", path, i)
		if len(m.Value) != n {
			v.add(p, fmt.Sprintf("%s entry is %d bytes, want %d", path, len(m.Value), n), fmt.Sprintf("write %d hex digits", 2*n))
		}
		if seen[string(m.Value)] {
			v.add(p, fmt.Sprintf("%s lists %s twice", path, abbrev(m.Value.String())), "remove the duplicate")
		}
		seen[string(m.Value)] = true
	}
}

func (v *validator) masked(path string, m *Masked) {
	if m == nil {
		return
	}
	if len(m.Value) != LenMask64 {
		v.add(path+".value", fmt.Sprintf("%s value is %d bytes, want %d", path, len(m.Value), LenMask64), "write 16 hex digits, bytes in quote order")
	}
	if m.Mask != nil && len(m.Mask) != LenMask64 {
		v.add(path+".mask", fmt.Sprintf("%s mask is %d bytes, want %d", path, len(m.Mask), LenMask64), "write 16 hex digits, bytes in quote order")
	}
}

func (v *validator) digests(path string, ds []Digest) {
	for i, d := range ds {
		p := fmt.Sprintf("%s[%d]", path, i)
		if len(d.Digest) != LenDigest {
			v.add(p, fmt.Sprintf("%s digest is %d bytes, want %d (SHA-256)", path, len(d.Digest), LenDigest), "write 64 hex digits")
		}
	}
}

func knownStatus(s string) bool {
	for _, k := range KnownTCBStatuses {
		if s == k {
			return true
		}
	}
	return false
}

// Lint returns advisory warnings about a valid policy: checks it leaves out that a production
// policy usually wants. Errors are reported by Parse, not here.
func Lint(p *Policy) []Problem {
	var w []Problem
	add := func(path, msg, hint string) {
		w = append(w, Problem{File: p.Source, Line: p.Line(path), Msg: "warning: " + msg, Hint: hint})
	}
	if !p.Accepts(TEETDX) && !p.Accepts(TEESEVSNP) && !p.AllowUnattested {
		add("apiVersion", "the policy accepts no TEE and no unattested server: nothing can pass", "add a tdx: or sevSnp: section")
	}
	if p.AllowUnattested {
		add("allowUnattested", "unattested servers are allowed: prompts may go to an unverified machine", "use only for development")
	}
	if p.Accepts(TEETDX) {
		t := p.TDXRules()
		if len(t.MRTD) == 0 {
			add("tdx", "no MRTD allow-list: any TD firmware is accepted", "add tdx.mrtd")
		}
		if len(t.RTMR1) == 0 || len(t.RTMR2) == 0 {
			add("tdx", "RTMR1/RTMR2 not pinned: any kernel and command line are accepted", "add tdx.rtmr1 and tdx.rtmr2")
		}
		if len(t.MRSEAM) == 0 {
			add("tdx", "no MRSEAM allow-list: any Intel-signed TDX module is accepted", "add tdx.mrseam")
		}
		if t.AllowDebug {
			add("tdx.allowDebug", "debug TDs are accepted: the host can read their memory", "")
		}
		if t.TCB.AllowNoCollateral {
			add("tdx.tcb.allowNoCollateral", "quotes without collateral are accepted: TCB status is not checked", "")
		}
	}
	if p.Accepts(TEESEVSNP) {
		s := p.SNPRules()
		if len(s.Measurements) == 0 {
			add("sevSnp", "no measurement allow-list: any SEV-SNP guest is accepted", "add sevSnp.measurements")
		}
		if s.AllowDebug {
			add("sevSnp.allowDebug", "debug guests are accepted", "")
		}
	}
	if len(p.Runtime.Models) == 0 {
		add("runtime", "no model allow-list: any model is accepted", "add runtime.models")
	}
	if !p.Runtime.RTMRBound() {
		add("runtime.requireRTMRBound", "runtime claims need not be bound to RTMR3", "")
	}
	if !p.Freshness.NonceRequired() {
		add("freshness.requireNonce", "no fresh nonce required: evidence can be replayed", "")
	}
	return w
}
