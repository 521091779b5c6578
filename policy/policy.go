// Package policy defines the tdxl verification policy file: what a client accepts before it sends a
// prompt to a pod. A policy is a versioned YAML (or JSON) document, `apiVersion: tdxl/v1`, parsed
// strictly: unknown keys, wrong lengths and bad hex are errors that name the file and line.
//
// Every field's doc comment says what its zero value (the field left out) means. As a rule a
// missing allow-list means "not checked" (and `tdxl policy lint` warns about it), while every
// switch that weakens the verdict (debug, unattested servers, non-UpToDate TCB, unbound runtime
// claims, no nonce) is off unless written down.
//
// The package uses only the standard library and a YAML parser; it knows nothing of quotes or
// the network. The verifier package turns a Policy into checks.
package policy

import (
	"encoding/hex"
	"time"
)

// APIVersion is the only policy schema version this package reads.
const APIVersion = "tdxl/v1"

// TEE names accepted in Policy.TEEs.
const (
	TEETDX    = "tdx"
	TEESEVSNP = "sev-snp"
)

// TCB status names as Intel PCS spells them (TCB info / QE identity tcbStatus).
const (
	StatusUpToDate                          = "UpToDate"
	StatusSWHardeningNeeded                 = "SWHardeningNeeded"
	StatusConfigurationNeeded               = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	StatusRevoked                           = "Revoked"
)

// KnownTCBStatuses lists the statuses a policy may accept. "Revoked" is deliberately absent:
// a revoked TCB is never acceptable.
var KnownTCBStatuses = []string{
	StatusUpToDate, StatusSWHardeningNeeded, StatusConfigurationNeeded,
	StatusConfigurationAndSWHardeningNeeded, StatusOutOfDate, StatusOutOfDateConfigurationNeeded,
}

// Policy is one parsed policy file.
type Policy struct {
	// APIVersion must be "tdxl/v1". Required: a file without it is refused.
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// Name labels the policy in reports. Empty: the file name is used.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// TEEs lists the TEE kinds accepted ("tdx", "sev-snp"). Empty: every kind that has a section
	// below (tdx:, sevSnp:) is accepted, and none if there is no section.
	TEEs []string `yaml:"tees,omitempty" json:"tees,omitempty"`
	// AllowUnattested lets the client talk to a server whose evidence says "unattested" (tee none),
	// with a warning on every call. False (the default): such servers are refused.
	AllowUnattested bool `yaml:"allowUnattested,omitempty" json:"allowUnattested,omitempty"`
	// TrustRoots names PEM files of extra quote-signing roots (relative to the policy file).
	// Empty (the default): only Intel's SGX root CA and AMD's ARKs are trusted. Meant for private
	// PKIs and test TEEs; reports always say which root was used.
	TrustRoots []string `yaml:"trustRoots,omitempty" json:"trustRoots,omitempty"`
	// TDX holds the rules for Intel TDX quotes. Absent: TDX evidence is refused unless TEEs lists "tdx"
	// (then only the defaults below apply: debug refused, UpToDate only).
	TDX *TDX `yaml:"tdx,omitempty" json:"tdx,omitempty"`
	// SEVSNP holds the rules for AMD SEV-SNP reports. Absent: SEV-SNP evidence is refused unless TEEs
	// lists "sev-snp".
	SEVSNP *SEVSNP `yaml:"sevSnp,omitempty" json:"sevSnp,omitempty"`
	// Runtime holds the rules for the pod's runtime measurements (the RTMR3 event log).
	// Absent: runtime claims are reported but not checked against allow-lists.
	Runtime Runtime `yaml:"runtime,omitempty" json:"runtime,omitempty"`
	// Freshness says how fresh evidence must be.
	Freshness Freshness `yaml:"freshness,omitempty" json:"freshness,omitempty"`

	// Source is the file the policy was read from ("" if parsed from bytes without a name).
	Source string `yaml:"-" json:"-"`
	// Raw is the file's bytes as parsed (kept so a verification bundle can record the policy).
	Raw []byte `yaml:"-" json:"-"`
	// Lines maps a dotted key path ("tdx.mrtd", "runtime.models") to its line in Source.
	Lines map[string]int `yaml:"-" json:"-"`
}

// TDX is the Intel TDX part of a policy. Byte values are hex strings (upper or lower case).
type TDX struct {
	// MRTD is the allow-list of MRTD values (48 bytes, the TD's initial memory: firmware).
	// Empty: MRTD is not checked (lint warns).
	MRTD []Measurement `yaml:"mrtd,omitempty" json:"mrtd,omitempty"`
	// RTMR0 is the allow-list of RTMR0 values (48 bytes, firmware configuration; varies with the
	// VM size). Empty: not checked.
	RTMR0 []Measurement `yaml:"rtmr0,omitempty" json:"rtmr0,omitempty"`
	// RTMR1 is the allow-list of RTMR1 values (48 bytes, kernel). Empty: not checked.
	RTMR1 []Measurement `yaml:"rtmr1,omitempty" json:"rtmr1,omitempty"`
	// RTMR2 is the allow-list of RTMR2 values (48 bytes, kernel command line and initrd).
	// Empty: not checked.
	RTMR2 []Measurement `yaml:"rtmr2,omitempty" json:"rtmr2,omitempty"`
	// MRSEAM is the allow-list of TDX module measurements (48 bytes; Intel publishes one per
	// tdx-module release). Empty: not checked.
	MRSEAM []Measurement `yaml:"mrseam,omitempty" json:"mrseam,omitempty"`
	// MRConfigID is the allow-list of MRCONFIGID values (48 bytes). Empty: not checked.
	MRConfigID []Measurement `yaml:"mrConfigId,omitempty" json:"mrConfigId,omitempty"`
	// AllowDebug accepts a TD whose TD_ATTRIBUTES DEBUG bit (bit 0) is set. A debug TD's memory
	// can be read by the host. False (the default): debug TDs are refused.
	AllowDebug bool `yaml:"allowDebug,omitempty" json:"allowDebug,omitempty"`
	// TDAttributes requires (TD_ATTRIBUTES & mask) == (value & mask), 8 bytes each, little-endian
	// as in the quote. Absent: only the DEBUG rule above and the library's fixed-bit checks apply.
	TDAttributes *Masked `yaml:"tdAttributes,omitempty" json:"tdAttributes,omitempty"`
	// XFAM requires (XFAM & mask) == (value & mask), 8 bytes each. Absent: only the library's
	// fixed-bit checks apply.
	XFAM *Masked `yaml:"xfam,omitempty" json:"xfam,omitempty"`
	// MinTEETCBSVN is the component-wise minimum TEE_TCB_SVN (16 bytes). Empty: not checked.
	MinTEETCBSVN HexBytes `yaml:"minTeeTcbSvn,omitempty" json:"minTeeTcbSvn,omitempty"`
	// TCB says which TCB levels (from Intel's collateral) are acceptable.
	TCB TCB `yaml:"tcb,omitempty" json:"tcb,omitempty"`
}

// TCB is the collateral part of the TDX rules.
type TCB struct {
	// AcceptedStatuses lists the TCB statuses accepted after Intel's convergence of platform,
	// TDX module and QE status. Empty: only "UpToDate". "Revoked" can never be accepted.
	AcceptedStatuses []string `yaml:"acceptedStatuses,omitempty" json:"acceptedStatuses,omitempty"`
	// AllowedAdvisories, when non-empty, is the complete list of Intel security advisory IDs
	// (INTEL-SA-xxxxx) that an accepted non-UpToDate level may carry; any other advisory refuses.
	// Empty: any advisory of an accepted status is accepted (and reported).
	AllowedAdvisories []string `yaml:"allowedAdvisories,omitempty" json:"allowedAdvisories,omitempty"`
	// MinTCBEvaluationDataNumber refuses TCB info and QE identity older than this Intel TCB
	// recovery round. Zero: not checked.
	MinTCBEvaluationDataNumber int `yaml:"minTcbEvaluationDataNumber,omitempty" json:"minTcbEvaluationDataNumber,omitempty"`
	// MaxCollateralAge refuses collateral (TCB info, QE identity, CRLs) issued longer ago than this
	// at the verification time (Intel issues new collateral daily). Zero: only the collateral's own
	// validity window (issueDate..nextUpdate) is checked.
	MaxCollateralAge Duration `yaml:"maxCollateralAge,omitempty" json:"maxCollateralAge,omitempty"`
	// AllowMissingCRLs accepts collateral without the PCK and root CA CRLs (revocation then shows
	// as "skipped" in the report). False (the default): CRLs are required and checked.
	AllowMissingCRLs bool `yaml:"allowMissingCRLs,omitempty" json:"allowMissingCRLs,omitempty"`
	// AllowNoCollateral accepts a quote whose signature and PCK chain verify when no collateral can
	// be obtained at all (TCB status unknown, shown as "skipped"). False (the default): refused.
	AllowNoCollateral bool `yaml:"allowNoCollateral,omitempty" json:"allowNoCollateral,omitempty"`
}

// SEVSNP is the AMD SEV-SNP part of a policy.
type SEVSNP struct {
	// Measurements is the allow-list of launch MEASUREMENT values (48 bytes). Empty: not checked.
	Measurements []Measurement `yaml:"measurements,omitempty" json:"measurements,omitempty"`
	// HostData is the allow-list of HOST_DATA values (32 bytes). Empty: not checked.
	HostData []Measurement `yaml:"hostData,omitempty" json:"hostData,omitempty"`
	// AllowDebug accepts a guest policy with the DEBUG bit (19) set. False (the default): refused.
	AllowDebug bool `yaml:"allowDebug,omitempty" json:"allowDebug,omitempty"`
	// AllowMigrateMA accepts a guest policy that allows a migration agent. False: refused.
	AllowMigrateMA bool `yaml:"allowMigrateMA,omitempty" json:"allowMigrateMA,omitempty"`
	// MinTCB is the minimum REPORTED_TCB, component-wise. Absent: not checked.
	MinTCB *SNPTCB `yaml:"minTcb,omitempty" json:"minTcb,omitempty"`
	// VMPL is the required VMPL of the report (0 = the most privileged level). Absent: not checked.
	VMPL *int `yaml:"vmpl,omitempty" json:"vmpl,omitempty"`
}

// SNPTCB is an AMD TCB version split into its security version numbers.
type SNPTCB struct {
	// BootLoader minimum SVN. Zero: any.
	BootLoader uint8 `yaml:"bootloader,omitempty" json:"bootloader,omitempty"`
	// TEE (PSP OS) minimum SVN. Zero: any.
	TEE uint8 `yaml:"tee,omitempty" json:"tee,omitempty"`
	// SNP firmware minimum SVN. Zero: any.
	SNP uint8 `yaml:"snp,omitempty" json:"snp,omitempty"`
	// Microcode minimum SVN. Zero: any.
	Microcode uint8 `yaml:"microcode,omitempty" json:"microcode,omitempty"`
}

// Runtime holds the allow-lists for what the pod serves, as recorded in its RTMR3 event log.
type Runtime struct {
	// RequireRTMRBound demands that runtime claims are extended into RTMR3 and replay to the quoted
	// value. Absent (nil): true. Set false only for kernels that cannot extend RTMRs; the claims
	// are then reported as unbound (the pod's own word).
	RequireRTMRBound *bool `yaml:"requireRTMRBound,omitempty" json:"requireRTMRBound,omitempty"`
	// Models lists the accepted model digests (SHA-256 of the canonical model manifest).
	// Empty: any model (lint warns).
	Models []Digest `yaml:"models,omitempty" json:"models,omitempty"`
	// Backends lists the accepted backend binary digests (SHA-256). Empty: any backend.
	Backends []Digest `yaml:"backends,omitempty" json:"backends,omitempty"`
	// Gateways lists the accepted gateway binary digests (SHA-256). Empty: any gateway.
	Gateways []Digest `yaml:"gateways,omitempty" json:"gateways,omitempty"`
	// Configs lists the accepted effective-configuration digests (SHA-256 of canonical JSON).
	// Empty: any configuration.
	Configs []Digest `yaml:"configs,omitempty" json:"configs,omitempty"`
}

// RTMRBound reports the effective RequireRTMRBound (nil means true).
func (r Runtime) RTMRBound() bool { return r.RequireRTMRBound == nil || *r.RequireRTMRBound }

// Freshness says how fresh evidence must be.
type Freshness struct {
	// RequireNonce demands that the evidence carries the client's fresh nonce in REPORTDATA.
	// Absent (nil): true. False accepts a cached quote over the same TLS key (replayable).
	RequireNonce *bool `yaml:"requireNonce,omitempty" json:"requireNonce,omitempty"`
	// MaxEvidenceAge refuses evidence whose time is older than this at the verification time.
	// Zero: not checked (a fresh nonce already proves liveness).
	MaxEvidenceAge Duration `yaml:"maxEvidenceAge,omitempty" json:"maxEvidenceAge,omitempty"`
}

// NonceRequired reports the effective RequireNonce (nil means true).
func (f Freshness) NonceRequired() bool { return f.RequireNonce == nil || *f.RequireNonce }

// Measurement is one allow-list entry: a value and an optional human name. In YAML either a plain
// hex string or {value: HEX, name: TEXT}.
type Measurement struct {
	// Value is the measured bytes. Never empty in a parsed policy.
	Value HexBytes `yaml:"value" json:"value"`
	// Name says what the value is (e.g. "TDX module 2.0.08"). Empty: unnamed.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
}

// Digest is one runtime allow-list entry: a SHA-256 digest and the name of what it measures.
type Digest struct {
	// Name identifies the thing, e.g. "stabilityai/sdxl-turbo". Empty: unnamed.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Digest is the SHA-256 (32 bytes, hex; an optional "sha256:" prefix is accepted).
	Digest HexBytes `yaml:"digest" json:"digest"`
}

// Masked is a value compared under a mask.
type Masked struct {
	// Value is the required bits (8 bytes hex).
	Value HexBytes `yaml:"value" json:"value"`
	// Mask selects the bits compared (8 bytes hex). Empty: all bits (exact match).
	Mask HexBytes `yaml:"mask,omitempty" json:"mask,omitempty"`
}

// HexBytes is a byte string written in hex. It marshals as lower-case hex.
type HexBytes []byte

// String returns lower-case hex.
func (h HexBytes) String() string { return hex.EncodeToString(h) }

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// Duration is a time.Duration written as Go duration text ("720h", "10m").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Accepts reports whether TEE kind tee ("tdx", "sev-snp") is accepted by the policy.
func (p *Policy) Accepts(tee string) bool {
	if len(p.TEEs) > 0 {
		for _, t := range p.TEEs {
			if t == tee {
				return true
			}
		}
		return false
	}
	switch tee {
	case TEETDX:
		return p.TDX != nil
	case TEESEVSNP:
		return p.SEVSNP != nil
	}
	return false
}

// TDXRules returns the TDX section, or the defaults (a zero TDX) when the section is absent.
func (p *Policy) TDXRules() TDX {
	if p.TDX == nil {
		return TDX{}
	}
	return *p.TDX
}

// SNPRules returns the SEV-SNP section, or the defaults when absent.
func (p *Policy) SNPRules() SEVSNP {
	if p.SEVSNP == nil {
		return SEVSNP{}
	}
	return *p.SEVSNP
}

// AcceptedStatuses returns the effective accepted TCB statuses (default: UpToDate only).
func (t TCB) Accepted() []string {
	if len(t.AcceptedStatuses) == 0 {
		return []string{StatusUpToDate}
	}
	return t.AcceptedStatuses
}

// Line returns the line of a dotted key path in the source file, or 0 if unknown.
func (p *Policy) Line(path string) int {
	if p == nil || p.Lines == nil {
		return 0
	}
	return p.Lines[path]
}

// Where returns "file:line" for a key path, "(default)" when the file does not set it (the zero
// value's meaning applies), and "file" for the empty path.
func (p *Policy) Where(path string) string {
	if p == nil {
		return ""
	}
	src := p.Source
	if src == "" {
		src = "policy"
	}
	if l := p.Line(path); l > 0 {
		return src + ":" + itoa(l)
	}
	if path == "" {
		return src
	}
	return "(default)"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
