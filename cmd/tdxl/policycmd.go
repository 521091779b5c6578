package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tdxl/tdxl/policy"
	"github.com/tdxl/tdxl/verifier"
)

func (c *cli) policy(args []string) int {
	if len(args) == 0 {
		return c.usageErr("policy needs a subcommand", "tdxl policy lint|derive|explain")
	}
	switch args[0] {
	case "lint":
		return c.policyLint(args[1:])
	case "derive":
		return c.policyDerive(args[1:])
	case "explain":
		return c.policyExplain(args[1:])
	}
	return c.usageErr(fmt.Sprintf("unknown policy subcommand %q", args[0]), "tdxl policy lint|derive|explain")
}

// policyLint checks files for CI: errors (with file:line) make the exit code non-zero; warnings
// do too with --strict.
func (c *cli) policyLint(args []string) int {
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	strict := fs.Bool("strict", false, "treat warnings as errors")
	files, err := parse(fs, args)
	if err != nil || len(files) == 0 {
		return c.usageErr("policy lint needs at least one FILE", "tdxl policy lint deploy/policies/*.yaml")
	}
	bad := false
	for _, f := range files {
		p, err := policy.Load(f)
		if err != nil {
			var pe *policy.Error
			if errors.As(err, &pe) {
				for _, pr := range pe.Problems {
					fmt.Fprintln(c.stderr, pr.String())
				}
			} else {
				fmt.Fprintf(c.stderr, "%s: %v\n", f, err)
			}
			bad = true
			continue
		}
		warns := policy.Lint(p)
		for _, w := range warns {
			fmt.Fprintln(c.stderr, w.String())
		}
		if *strict && len(warns) > 0 {
			bad = true
			continue
		}
		fmt.Fprintf(c.stdout, "%s: ok\n", f)
	}
	if bad {
		return exitUsage
	}
	return exitOK
}

func (c *cli) policyExplain(args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	files, err := parse(fs, args)
	if err != nil || len(files) != 1 {
		return c.usageErr("policy explain takes one FILE", "")
	}
	p, err := policy.Load(files[0])
	if err != nil {
		return c.usageErr(oneLine(err.Error()), "tdxl policy lint "+files[0])
	}
	if err := policy.Explain(c.stdout, p); err != nil {
		c.errorf("%v", err)
		return exitInternal
	}
	return exitOK
}

// observePolicy accepts anything that is cryptographically sound, so that derive can read the
// measurements of a pod it does not know yet.
const observePolicy = `apiVersion: tdxl/v1
name: observe
tees: [tdx, sev-snp]
tdx:
  allowDebug: true
  tcb:
    acceptedStatuses: [UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded]
    allowMissingCRLs: true
    allowNoCollateral: true
sevSnp: {allowDebug: true, allowMigrateMA: true}
runtime: {requireRTMRBound: false}
`

// policyDerive prints a policy that accepts exactly the observed measurements.
func (c *cli) policyDerive(args []string) int {
	fs := flag.NewFlagSet("derive", flag.ContinueOnError)
	var o common
	o.register(fs)
	fromBundle := fs.String("from-bundle", "", "derive from a saved bundle")
	pos, err := parse(fs, args)
	if err != nil || (len(pos) == 1) == (*fromBundle != "") || len(pos) > 1 {
		return c.usageErr("policy derive takes --from-bundle FILE or one URL", "")
	}
	_, roots, err := o.loadPolicy(false)
	if err != nil {
		return c.failUsage(err)
	}
	obs, _ := policy.Parse("observe", []byte(observePolicy))
	var rep *verifier.Report
	var source string
	if *fromBundle != "" {
		b, err := verifier.LoadBundle(*fromBundle)
		if err != nil {
			return c.fail(err)
		}
		rep, err = verifier.VerifyBundle(c.ctx, b, verifier.BundleOptions{Roots: roots, Policy: obs, AllowUnattested: true})
		if err != nil {
			c.errorf("the bundle does not verify even without a policy: %s", oneLine(err.Error()))
			c.hint(verifier.Hint(err))
			return exitCode(err)
		}
		source = "bundle " + *fromBundle
	} else {
		rep, err = verifier.Verify(c.ctx, pos[0], obs, verifier.OnlineOptions{Roots: roots, Getter: o.getter(), AllowUnattested: true, Timeout: o.timeout})
		if err != nil {
			c.errorf("the pod does not verify even without a policy: %s", oneLine(errString(err)))
			c.hint(verifier.Hint(err))
			return exitCode(err)
		}
		source = pos[0]
	}
	if !rep.Attested {
		c.errorf("the server is unattested: there is nothing to derive")
		return exitRefused
	}
	writeDerived(c.stdout, rep, source)
	fmt.Fprintln(c.stderr, "tdxl: the policy on stdout pins OBSERVED values: review them against your build before trusting it")
	return exitOK
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func writeDerived(w io.Writer, r *verifier.Report, source string) {
	m := r.Measurements
	fmt.Fprintf(w, "# tdxl policy DERIVED from %s on %s.\n", source, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# These are OBSERVED values, NOT PROVEN ones: they say what the pod ran when it was observed,\n")
	fmt.Fprintf(w, "# not that it was the software you meant to deploy. Compare every value with the measurements of\n")
	fmt.Fprintf(w, "# your reproducible build before using this policy. Root of trust seen: %s.\n", r.Root)
	fmt.Fprintf(w, "apiVersion: %s\nname: derived\ntees: [%s]\n", policy.APIVersion, r.TEE)
	switch r.TEE {
	case "tdx":
		fmt.Fprintf(w, "tdx:\n")
		for _, k := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam"} {
			fmt.Fprintf(w, "  %s: [%s]  # observed\n", k, m[k])
		}
		if m["tdAttributes"] != "" {
			fmt.Fprintf(w, "  tdAttributes: {value: %q}  # observed\n", m["tdAttributes"])
			fmt.Fprintf(w, "  xfam: {value: %q}  # observed\n", m["xfam"])
		}
		status := r.TCBStatus
		if status == "" {
			status = policy.StatusUpToDate
		}
		fmt.Fprintf(w, "  tcb:\n    acceptedStatuses: [%s]  # observed status was %s\n    maxCollateralAge: 7d\n", policy.StatusUpToDate, orUnknown(r.TCBStatus))
	case "sev-snp":
		fmt.Fprintf(w, "sevSnp:\n  measurements: [%s]  # observed\n  vmpl: %s  # observed\n", m["measurement"], m["vmpl"])
	}
	fmt.Fprintf(w, "runtime:\n")
	bound := len(r.Runtime) > 0 && r.Runtime[0].Bound
	fmt.Fprintf(w, "  requireRTMRBound: %v  # observed: claims %s\n", bound, boundWord(bound))
	byType := map[string][]verifier.RuntimeClaim{}
	for _, rc := range r.Runtime {
		byType[rc.Type] = append(byType[rc.Type], rc)
	}
	keys := map[string]string{"model": "models", "backend-binary": "backends", "gateway-binary": "gateways", "config": "configs"}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		k, ok := keys[t]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  %s:  # observed\n", k)
		for _, rc := range byType[t] {
			fmt.Fprintf(w, "    - {name: %q, digest: %s}\n", strings.TrimSpace(rc.Description), rc.Digest)
		}
	}
	fmt.Fprintf(w, "freshness:\n  requireNonce: true\n  maxEvidenceAge: 5m\n")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown (no collateral)"
	}
	return s
}
