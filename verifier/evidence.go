package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/policy"
)

// checkEvidence runs every check on an evidence document whose COSE signature by the TLS key
// (spki) was already verified: nonce, unattested opt-in, the quote (chain, TCB, policy), the
// REPORTDATA binding, the RTMR3 event-log replay, runtime digests and freshness.
func checkEvidence(ctx context.Context, e *env, ev *attest.Evidence, spki, nonce []byte, allowUnattested bool) error {
	rec := e.rec
	h := sha256.Sum256(spki)
	rec.r.SPKISHA256 = hexs(h[:])
	rec.r.Nonce = hexs(nonce)
	rec.r.TEE = string(ev.TEE)
	rec.r.Attested = !ev.Unattested
	if !bytes.Equal(ev.SPKISHA256, h[:]) {
		return rec.fail(&FactorError{Factor: "evidence.spki", Reason: ErrBinding, Actual: hexs(ev.SPKISHA256), Expected: hexs(h[:]),
			Hint: "the evidence names another TLS key: someone between you and the pod"}, "")
	}
	// Nonce (freshness against replay).
	switch {
	case len(nonce) > 0 && !bytes.Equal(ev.Nonce, nonce):
		return rec.fail(&FactorError{Factor: "freshness.nonce", Reason: ErrNonce, Actual: orNone(hexs(ev.Nonce)), Expected: hexs(nonce),
			Hint: "the evidence was made for another request (replayed)"}, "freshness.requireNonce")
	case len(nonce) == 0 && e.pol.Freshness.NonceRequired():
		return rec.fail(&FactorError{Factor: "freshness.nonce", Reason: ErrNonce, Actual: "no nonce", Expected: "a fresh nonce",
			Hint: "the policy requires fresh evidence (freshness.requireNonce)"}, "freshness.requireNonce")
	case len(nonce) > 0:
		rec.pass("freshness.nonce", "", "fresh ("+short(hexs(nonce))+")", "freshness.requireNonce", "")
	default:
		rec.advisory("freshness.nonce", "", "none", "freshness.requireNonce", "cached evidence accepted by policy")
	}
	if max := e.pol.Freshness.MaxEvidenceAge.D(); max > 0 {
		if age := e.now.Sub(ev.Time); age > max {
			return rec.fail(&FactorError{Factor: "freshness.age", Reason: ErrStale, Actual: age.Round(time.Second).String(), Expected: "<= " + max.String(),
				Hint: "fetch fresh evidence"}, "freshness.maxEvidenceAge")
		}
		rec.pass("freshness.age", "<= "+max.String(), e.now.Sub(ev.Time).Round(time.Second).String(), "freshness.maxEvidenceAge", "")
	}
	if ev.Unattested {
		if !(allowUnattested || e.pol.AllowUnattested) {
			return rec.fail(&FactorError{Factor: "tee", Reason: ErrUnattested, Actual: "none (unattested)", Expected: "tdx|sev-snp",
				Hint: "the server runs without a TEE; use --allow-unattested (or allowUnattested: true) only for development"}, "allowUnattested")
		}
		w := "server is UNATTESTED: nothing about it is proven; prompts are not protected"
		rec.r.Warnings = append(rec.r.Warnings, w)
		rec.advisory("tee", "", "none (unattested)", "allowUnattested", w)
		return nil
	}
	rd := attest.ReportData(spki, ev.Nonce)
	var quoteRD []byte
	var rtmr3 []byte
	switch ev.TEE {
	case attest.TEETDX:
		if !e.pol.Accepts(policy.TEETDX) {
			return rec.fail(&FactorError{Factor: "tee", Reason: ErrTEENotAccepted, Actual: "tdx", Hint: "the policy does not accept TDX"}, "tees")
		}
		q, err := parseTDXQuote(ev.Quote)
		if err != nil {
			return rec.fail(&FactorError{Factor: "tdx.quote", Reason: ErrEvidenceMalformed, Err: err}, "")
		}
		if err := verifyTDX(ctx, e, q); err != nil && isCrypto(err) {
			return err
		}
		quoteRD, rtmr3 = q.body.reportData, q.body.rtmrs[3]
	case attest.TEESEVSNP:
		r, err := verifySNP(ctx, e, ev.Quote, SNPCerts{Table: ev.Certs})
		if r == nil {
			return err
		}
		if err != nil && isCrypto(err) {
			return err
		}
		quoteRD = snpReportData(r)
	default:
		return rec.fail(&FactorError{Factor: "tee", Reason: ErrTEENotAccepted, Actual: string(ev.TEE)}, "tees")
	}
	// Binding: REPORTDATA == ReportData(SPKI, nonce).
	if bytes.Equal(quoteRD, rd[:]) {
		rec.pass("binding.reportdata", "ReportData(TLS SPKI, nonce)", short(hexs(quoteRD)), "", "the quote vouches for this TLS key")
	} else {
		rec.fail(&FactorError{Factor: "binding.reportdata", Reason: ErrBinding, Actual: hexs(quoteRD), Expected: hexs(rd[:]),
			Hint: "the quote was made for another TLS key or nonce: a man in the middle, or a relayed quote"}, "")
	}
	checkRuntime(e, ev, rtmr3)
	return rec.err
}

// isCrypto reports whether err means the evidence cannot be trusted at all (so later checks are
// meaningless): forged, malformed or unverifiable.
func isCrypto(err error) bool {
	for _, r := range []error{ErrEvidenceMalformed, ErrUntrustedRoot, ErrQuoteSignature, ErrCOSESignature} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// checkRuntime replays the event log into RTMR3 and checks the runtime digests.
func checkRuntime(e *env, ev *attest.Evidence, rtmr3 []byte) {
	rec, rt := e.rec, e.pol.Runtime
	bound := false
	switch {
	case ev.RTMRExtended && rtmr3 != nil:
		got := attest.ReplayRTMR(ev.EventLog)
		if bytes.Equal(got[:], rtmr3) {
			bound = true
			rec.pass("runtime.rtmr3", hexs(got[:]), hexs(rtmr3), "runtime.requireRTMRBound", fmt.Sprintf("%d events replay to RTMR3", len(ev.EventLog)))
		} else {
			rec.fail(&FactorError{Factor: "runtime.rtmr3", Reason: ErrEventLog, Actual: hexs(rtmr3), Expected: "replay " + hexs(got[:]),
				Hint: "the event log does not describe what was measured into RTMR3"}, "runtime.requireRTMRBound")
		}
	case rt.RTMRBound():
		why := ev.RTMRStatus
		if why == "" {
			why = "evidence says the events were not extended into RTMR3"
		}
		rec.fail(&FactorError{Factor: "runtime.rtmr3", Reason: ErrEventLog, Actual: "not bound: " + why, Expected: "events replayed into RTMR3",
			Hint: "runtime claims are only the pod's word; the policy requires RTMR binding (runtime.requireRTMRBound: false accepts it)"}, "runtime.requireRTMRBound")
	default:
		rec.advisory("runtime.rtmr3", "", "not bound", "runtime.requireRTMRBound", "runtime claims are the signed word of the gateway, not of the hardware")
	}
	for _, ev := range ev.EventLog {
		rec.r.Runtime = append(rec.r.Runtime, RuntimeClaim{Type: string(ev.Type), Description: ev.Description, Digest: hexs(ev.Measurement), Bound: bound})
	}
	digests(rec, ev.EventLog, attest.EventModel, "runtime.model", "runtime.models", rt.Models)
	digests(rec, ev.EventLog, attest.EventBackendBinary, "runtime.backend", "runtime.backends", rt.Backends)
	digests(rec, ev.EventLog, attest.EventGatewayBinary, "runtime.gateway", "runtime.gateways", rt.Gateways)
	digests(rec, ev.EventLog, attest.EventConfig, "runtime.config", "runtime.configs", rt.Configs)
}

func digests(rec *recorder, log []attest.Event, typ attest.EventType, factor, path string, allow []policy.Digest) {
	var seen []attest.Event
	for _, e := range log {
		if e.Type == typ {
			seen = append(seen, e)
		}
	}
	if len(allow) == 0 {
		if len(seen) > 0 {
			rec.skip(factor, "", "no allow-list; observed "+hexs(seen[0].Measurement))
		} else {
			rec.skip(factor, "", "no allow-list")
		}
		return
	}
	if len(seen) == 0 {
		rec.fail(&FactorError{Factor: factor, Reason: ErrRuntimeDigest, Actual: "no " + string(typ) + " event", Expected: "one of the allow-list",
			Hint: "the pod did not measure this component"}, path)
		return
	}
	for _, s := range seen {
		name := ""
		for _, a := range allow {
			if bytes.Equal(a.Digest, s.Measurement) {
				name = a.Name
				if name == "" {
					name = "listed"
				}
			}
		}
		if name == "" {
			want := make([]string, len(allow))
			for i, a := range allow {
				want[i] = a.Name + "@" + short(hexs(a.Digest))
			}
			rec.fail(&FactorError{Factor: factor, Reason: ErrRuntimeDigest, Actual: hexs(s.Measurement) + " (" + s.Description + ")", Expected: strings.Join(want, ", "),
				Hint: "the pod serves a " + string(typ) + " the policy does not list"}, path)
			return
		}
		rec.pass(factor, "allow-list", hexs(s.Measurement), path, name)
	}
}
