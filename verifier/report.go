package verifier

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tdxl/tdxl/policy"
)

// Status of one factor.
type Status string

// Factor statuses.
const (
	Pass     Status = "pass"
	Fail     Status = "fail"
	Skipped  Status = "skipped"
	Advisory Status = "advisory" // passed with a caveat the user should know
)

// Factor is one check in a Report.
type Factor struct {
	Name     string `json:"name"`
	Status   Status `json:"status"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	Policy   string `json:"policy,omitempty"` // file:line of the rule, "" if built in
	Detail   string `json:"detail,omitempty"`
}

// Verdict values.
const (
	VerdictVerified   = "verified"
	VerdictRefused    = "refused"
	VerdictUnverified = "cannot-verify"
)

// Report lists every factor of one verification.
type Report struct {
	Target     string    `json:"target,omitempty"`
	Time       time.Time `json:"time"` // verification time T
	TEE        string    `json:"tee"`
	Attested   bool      `json:"attested"`
	Verdict    string    `json:"verdict"`
	Error      string    `json:"error,omitempty"`
	Hint       string    `json:"hint,omitempty"`
	Policy     string    `json:"policy,omitempty"`
	Root       string    `json:"root,omitempty"`       // which root the quote chained to
	TCBStatus  string    `json:"tcbStatus,omitempty"`  // converged TDX TCB status
	Advisories []string  `json:"advisories,omitempty"` // Intel advisory IDs of the matched levels
	SPKISHA256 string    `json:"spkiSha256,omitempty"` // the verified (pinned) TLS key
	Nonce      string    `json:"nonce,omitempty"`
	Factors    []Factor  `json:"factors"`
	// Measurements holds the observed values (hex) by name, for `tdxl policy derive`.
	Measurements map[string]string `json:"measurements,omitempty"`
	// Runtime lists the observed runtime events (type, name, digest).
	Runtime []RuntimeClaim `json:"runtime,omitempty"`
	// Warnings are shown on stderr by the CLI (e.g. unattested server).
	Warnings []string `json:"warnings,omitempty"`
}

// RuntimeClaim is one runtime measurement observed in the event log.
type RuntimeClaim struct {
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	Digest      string `json:"digest"` // SHA-256 hex of the measured thing
	Bound       bool   `json:"bound"`  // true if replayed into the quoted RTMR3
}

type recorder struct {
	r   *Report
	pol *policy.Policy
	err error // first failure
}

func newRecorder(r *Report, p *policy.Policy) *recorder {
	if r.Measurements == nil {
		r.Measurements = map[string]string{}
	}
	return &recorder{r: r, pol: p}
}

func (rc *recorder) where(path string) string {
	if path == "" || rc.pol == nil {
		return ""
	}
	return rc.pol.Where(path)
}

func (rc *recorder) pass(name, expected, actual, path, detail string) {
	rc.r.Factors = append(rc.r.Factors, Factor{name, Pass, expected, actual, rc.where(path), detail})
}

func (rc *recorder) advisory(name, expected, actual, path, detail string) {
	rc.r.Factors = append(rc.r.Factors, Factor{name, Advisory, expected, actual, rc.where(path), detail})
}

func (rc *recorder) skip(name, path, detail string) {
	rc.r.Factors = append(rc.r.Factors, Factor{Name: name, Status: Skipped, Policy: rc.where(path), Detail: detail})
}

// fail records a failed factor; the first failure becomes the verification error.
func (rc *recorder) fail(fe *FactorError, path string) error {
	fe.Where = rc.where(path)
	detail := fe.Reason.Error()
	if fe.Err != nil {
		detail += ": " + fe.Err.Error()
	}
	rc.r.Factors = append(rc.r.Factors, Factor{fe.Factor, Fail, fe.Expected, fe.Actual, fe.Where, detail})
	if rc.err == nil {
		rc.err = fe
	}
	return fe
}

// finish sets the verdict from err.
func (r *Report) finish(err error) {
	switch Class(err) {
	case nil:
		r.Verdict = VerdictVerified
	case ErrRefused:
		r.Verdict = VerdictRefused
	default:
		r.Verdict = VerdictUnverified
	}
	if err != nil {
		r.Error = err.Error()
		r.Hint = Hint(err)
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes a readable per-factor table.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %s", strings.ToUpper(r.Verdict))
	if r.Target != "" {
		fmt.Fprintf(&b, "  target: %s", r.Target)
	}
	fmt.Fprintf(&b, "  tee: %s  attested: %v  at: %s\n", orDash(r.TEE), r.Attested, r.Time.UTC().Format(time.RFC3339))
	if r.Root != "" {
		fmt.Fprintf(&b, "root of trust: %s\n", r.Root)
	}
	if r.TCBStatus != "" {
		fmt.Fprintf(&b, "TCB status: %s", r.TCBStatus)
		if len(r.Advisories) > 0 {
			fmt.Fprintf(&b, " (advisories: %s)", strings.Join(r.Advisories, ", "))
		}
		b.WriteString("\n")
	}
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tFACTOR\tACTUAL\tEXPECTED\tPOLICY")
	for _, f := range r.Factors {
		actual, expected := f.Actual, f.Expected
		if f.Status == Skipped || (f.Status == Fail && actual == "" && expected == "") {
			actual = f.Detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Status, f.Name, short(actual), short(expected), orDash(f.Policy))
	}
	tw.Flush()
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	}
	if r.Hint != "" {
		fmt.Fprintf(&b, "hint: %s\n", r.Hint)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(s string) string {
	if len(s) > 72 {
		return s[:34] + "…" + s[len(s)-34:]
	}
	return s
}
