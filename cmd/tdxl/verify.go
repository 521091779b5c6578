package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tdxl/tdxl/policy"
	"github.com/tdxl/tdxl/verifier"
)

// common holds the flags verify, curl and derive share.
type common struct {
	policyPath      string
	trustRoots      multi
	pccs            string
	cacheDir        string
	cacheMaxStale   time.Duration
	allowUnattested bool
	timeout         time.Duration
}

func (o *common) register(fs *flag.FlagSet) {
	fs.StringVar(&o.policyPath, "policy", "", "policy file (YAML or JSON)")
	fs.Var(&o.trustRoots, "trust-root", "extra quote-signing root certificate (PEM); repeatable")
	fs.StringVar(&o.pccs, "pccs", os.Getenv(verifier.EnvPCCS), "PCCS base URL for collateral (default Intel PCS; env "+verifier.EnvPCCS+")")
	fs.StringVar(&o.cacheDir, "cache", "", "directory caching collateral (fetch first, fall back to the cache)")
	fs.DurationVar(&o.cacheMaxStale, "cache-max-stale", 24*time.Hour, "oldest cached collateral used when the network fails")
	fs.BoolVar(&o.allowUnattested, "allow-unattested", false, "accept a server without a TEE (warns on every call)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "connection and evidence timeout")
}

// loadPolicy loads the policy and the roots it names (relative to the policy file).
func (o *common) loadPolicy(required bool) (*policy.Policy, *verifier.Roots, error) {
	roots := verifier.DefaultRoots()
	for _, r := range o.trustRoots {
		if err := roots.AddPEMFile(r); err != nil {
			return nil, nil, usageError{err.Error(), "--trust-root takes a PEM certificate file, e.g. the simulated root a gateway wrote with --simulated-root"}
		}
	}
	if o.policyPath == "" {
		if required {
			return nil, nil, usageError{"--policy is required", "start from deploy/policies/tdx-strict.yaml, or `tdxl policy derive`"}
		}
		return nil, roots, nil
	}
	p, err := policy.Load(o.policyPath)
	if err != nil {
		return nil, nil, usageError{err.Error(), "check the file with `tdxl policy lint " + o.policyPath + "`"}
	}
	for _, r := range p.TrustRoots {
		if !filepath.IsAbs(r) {
			r = filepath.Join(filepath.Dir(o.policyPath), r)
		}
		if err := roots.AddPEMFile(r); err != nil {
			return nil, nil, usageError{err.Error(), "trustRoots paths are relative to the policy file"}
		}
	}
	return p, roots, nil
}

func (o *common) getter() verifier.Getter {
	return verifier.NewCollateralGetter(verifier.CollateralOptions{PCCS: o.pccs, CacheDir: o.cacheDir, MaxStale: o.cacheMaxStale})
}

type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }

func (c *cli) verify(args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var o common
	o.register(fs)
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	saveBundle := fs.String("save-bundle", "", "save everything used (evidence, collateral, policy, time, verdict) to FILE")
	offline := fs.String("offline", "", "re-verify a saved bundle offline at its recorded time")
	quote := fs.String("quote", "", "raw TDX quote file (offline)")
	collateral := fs.String("collateral", "", "collateral folder for --quote")
	report := fs.String("report", "", "raw SEV-SNP report file (offline)")
	certs := fs.String("certs", "", "folder with vcek.der or vlek.der for --report")
	at := fs.String("at", "", "verification time (RFC 3339) for offline modes")
	pos, err := parse(fs, args)
	if err != nil {
		return c.usageErr(err.Error(), "run `tdxl help`")
	}
	modes := 0
	for _, set := range []bool{len(pos) > 0, *offline != "", *quote != "", *report != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 || len(pos) > 1 {
		return c.usageErr("give exactly one of: URL, --offline BUNDLE, --quote FILE, --report FILE", "")
	}
	var when time.Time
	if *at != "" {
		if when, err = time.Parse(time.RFC3339, *at); err != nil {
			return c.usageErr(fmt.Sprintf("--at %q is not an RFC 3339 time", *at), "e.g. --at 2025-07-01T00:00:00Z")
		}
	}
	p, roots, err := o.loadPolicy(*offline == "")
	if err != nil {
		return c.failUsage(err)
	}
	var rep *verifier.Report
	var sess *verifier.Session
	switch {
	case len(pos) == 1:
		if *at != "" {
			return c.usageErr("--at applies to offline modes only", "online verification uses the current time")
		}
		sess, err = verifier.Connect(c.ctx, pos[0], p, verifier.OnlineOptions{Roots: roots, Getter: o.getter(),
			AllowUnattested: o.allowUnattested, Timeout: o.timeout})
		if sess == nil {
			return c.failUsage(err)
		}
		rep = sess.Report
	case *offline != "":
		b, lerr := verifier.LoadBundle(*offline)
		if lerr != nil {
			return c.fail(lerr)
		}
		rep, err = verifier.VerifyBundle(c.ctx, b, verifier.BundleOptions{Roots: roots, Policy: p, Now: when, AllowUnattested: o.allowUnattested})
		if rep == nil {
			return c.failUsage(err)
		}
	case *quote != "":
		if *collateral == "" || when.IsZero() {
			return c.usageErr("--quote needs --collateral DIR and --at TIME", "")
		}
		raw, rerr := os.ReadFile(*quote)
		if rerr != nil {
			return c.usageErr(rerr.Error(), "")
		}
		rep, err = verifier.VerifyTDXQuote(c.ctx, raw, verifier.Options{Policy: p, Roots: roots, Getter: verifier.DirGetter(*collateral), Now: when})
	case *report != "":
		if *certs == "" || when.IsZero() {
			return c.usageErr("--report needs --certs DIR and --at TIME", "")
		}
		raw, rerr := os.ReadFile(*report)
		if rerr != nil {
			return c.usageErr(rerr.Error(), "")
		}
		sc, cerr := verifier.LoadSNPCertsDir(*certs)
		if cerr != nil {
			return c.usageErr(cerr.Error(), "the folder must hold vcek.der or vlek.der")
		}
		rep, err = verifier.VerifySNPReport(c.ctx, raw, sc, verifier.Options{Policy: p, Roots: roots, Now: when})
	}
	if rep == nil {
		return c.failUsage(err)
	}
	c.printWarnings(rep)
	if *jsonOut {
		rep.WriteJSON(c.stdout)
	} else {
		rep.WriteTable(c.stdout)
	}
	if *saveBundle != "" {
		if sess == nil || sess.Bundle == nil {
			c.errorf("--save-bundle works with URL verification only")
			return exitUsage
		}
		if serr := sess.Bundle.Save(*saveBundle); serr != nil {
			c.errorf("%v", serr)
			return exitInternal
		}
		fmt.Fprintf(c.stderr, "tdxl: bundle saved to %s (re-verify with `tdxl verify --offline %s`)\n", *saveBundle, *saveBundle)
	}
	if err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cli) printWarnings(rep *verifier.Report) {
	for _, w := range rep.Warnings {
		c.warn("%s", w)
	}
	if strings.Contains(rep.Root, "NOT Intel") || strings.Contains(rep.Root, "NOT AMD") {
		c.warn("the evidence chains to an added trust root (%s), not to the hardware vendor", rep.Root)
	}
}

// failUsage prints a usage error or a verification error.
func (c *cli) failUsage(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return c.usageErr(ue.msg, ue.hint)
	}
	if verifier.Class(err) == nil || (!errors.Is(err, verifier.ErrRefused) && !errors.Is(err, verifier.ErrUnavailable)) {
		return c.usageErr(err.Error(), "")
	}
	return c.fail(err)
}
