package verifier

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/validate"
	"github.com/tdxl/tdxl/policy"
)

const tdAttrDebug = 1 // TD_ATTRIBUTES bit 0

// checkTDXPolicy checks the quote body against the policy's TDX rules. Failures are recorded; the
// first one becomes rec.err.
func checkTDXPolicy(e *env, q *tdxQuote, rules policy.TDX) {
	rec, b := e.rec, q.body
	m := rec.r.Measurements
	m["mrtd"], m["rtmr0"], m["rtmr1"], m["rtmr2"], m["rtmr3"] = hexs(b.mrTd), hexs(b.rtmrs[0]), hexs(b.rtmrs[1]), hexs(b.rtmrs[2]), hexs(b.rtmrs[3])
	m["mrseam"], m["mrConfigId"], m["tdAttributes"], m["xfam"], m["teeTcbSvn"] = hexs(b.mrSeam), hexs(b.mrConfigID), hexs(b.tdAttributes), hexs(b.xfam), hexs(b.teeTcbSvn)
	attrs := binary.LittleEndian.Uint64(b.tdAttributes)
	switch {
	case attrs&tdAttrDebug != 0 && !rules.AllowDebug:
		rec.fail(&FactorError{Factor: "tdx.debug", Reason: ErrDebug, Actual: "DEBUG bit set (TD_ATTRIBUTES " + hexs(b.tdAttributes) + ")", Expected: "clear",
			Hint: "a debug TD's memory is readable by the host; never send it data (tdx.allowDebug: true accepts it)"}, "tdx.allowDebug")
	case attrs&tdAttrDebug != 0:
		rec.advisory("tdx.debug", "", "DEBUG bit set", "tdx.allowDebug", "accepted by policy: the host can read this TD's memory")
	default:
		rec.pass("tdx.debug", "clear", "clear", "tdx.allowDebug", "")
	}
	masked(rec, "tdx.td-attributes", "tdx.tdAttributes", ErrAttributes, b.tdAttributes, rules.TDAttributes)
	masked(rec, "tdx.xfam", "tdx.xfam", ErrXFAM, b.xfam, rules.XFAM)
	allow(rec, "tdx.mrtd", "tdx.mrtd", b.mrTd, rules.MRTD)
	allow(rec, "tdx.rtmr0", "tdx.rtmr0", b.rtmrs[0], rules.RTMR0)
	allow(rec, "tdx.rtmr1", "tdx.rtmr1", b.rtmrs[1], rules.RTMR1)
	allow(rec, "tdx.rtmr2", "tdx.rtmr2", b.rtmrs[2], rules.RTMR2)
	allow(rec, "tdx.mrseam", "tdx.mrseam", b.mrSeam, rules.MRSEAM)
	allow(rec, "tdx.mrconfigid", "tdx.mrConfigId", b.mrConfigID, rules.MRConfigID)
	if min := rules.MinTEETCBSVN; min != nil {
		ok := true
		for i := range min {
			if b.teeTcbSvn[i] < min[i] {
				ok = false
			}
		}
		if ok {
			rec.pass("tdx.tee-tcb-svn", ">= "+min.String(), hexs(b.teeTcbSvn), "tdx.minTeeTcbSvn", "")
		} else {
			rec.fail(&FactorError{Factor: "tdx.tee-tcb-svn", Reason: ErrSVN, Actual: hexs(b.teeTcbSvn), Expected: ">= " + min.String(),
				Hint: "the TDX module is older than the policy allows"}, "tdx.minTeeTcbSvn")
		}
	}
	// go-tdx-guest validate: the architectural fixed-bit checks of XFAM and TD_ATTRIBUTES, plus the
	// values matched above. It reads quote v4 only; v5 bodies get our own fixed-bit check.
	var err error
	opts := &validate.Options{TdQuoteBodyOptions: validate.TdQuoteBodyOptions{EnableTdDebugCheck: !rules.AllowDebug}}
	if v4, ok := q.proto.(*pb.QuoteV4); ok {
		err = validate.TdxQuote(v4, opts)
	} else {
		err = fixedBits(b.xfam, b.tdAttributes, !rules.AllowDebug)
	}
	if err != nil {
		if rec.err == nil || !strings.Contains(err.Error(), "DEBUG") {
			rec.fail(&FactorError{Factor: "tdx.fixed-bits", Reason: ErrAttributes, Err: err,
				Hint: "XFAM or TD_ATTRIBUTES has bits no valid TD configuration sets"}, "")
		}
	} else {
		rec.pass("tdx.fixed-bits", "", "valid", "", "XFAM and TD_ATTRIBUTES architectural bits (go-tdx-guest validate)")
	}
}

// fixedBits mirrors go-tdx-guest validate's constants for quote v5.
func fixedBits(xfam, attrs []byte, noDebug bool) error {
	const xfamFixed1, xfamFixed0 = 0x3, 0x6DBE7
	const attrFixed0 = 0x1 | 1<<28 | 1<<30 | 1<<63
	x, a := binary.LittleEndian.Uint64(xfam), binary.LittleEndian.Uint64(attrs)
	switch {
	case x&xfamFixed1 != xfamFixed1 || x&^uint64(xfamFixed0) != 0:
		return fmt.Errorf("unauthorized xfam 0x%x", x)
	case a&^uint64(attrFixed0) != 0:
		return fmt.Errorf("unauthorized tdAttributes 0x%x", a)
	case noDebug && a&1 != 0:
		return fmt.Errorf("TD_ATTRIBUTES DEBUG bit is set")
	}
	return nil
}

func masked(rec *recorder, factor, path string, reason error, v []byte, rule *policy.Masked) {
	if rule == nil {
		rec.skip(factor, "", "not in policy; actual "+hexs(v))
		return
	}
	mask := rule.Mask
	if mask == nil {
		mask = bytes.Repeat([]byte{0xff}, len(v))
	}
	if maskedEqual(v, mask, rule.Value) {
		rec.pass(factor, rule.Value.String()+" & "+mask.String(), hexs(v), path, "")
		return
	}
	rec.fail(&FactorError{Factor: factor, Reason: reason, Actual: hexs(v), Expected: rule.Value.String() + " under mask " + mask.String(),
		Hint: "the TD was launched with other CPU features/attributes than the policy allows"}, path)
}

func allow(rec *recorder, factor, path string, v []byte, list []policy.Measurement) {
	if len(list) == 0 {
		rec.skip(factor, "", "no allow-list in policy; actual "+hexs(v))
		return
	}
	for _, m := range list {
		if bytes.Equal(m.Value, v) {
			rec.pass(factor, "allow-list", hexs(v), path, m.Name)
			return
		}
	}
	want := make([]string, 0, len(list))
	for _, m := range list {
		want = append(want, short(m.Value.String()))
	}
	rec.fail(&FactorError{Factor: factor, Reason: ErrMeasurement, Actual: hexs(v), Expected: "one of " + strings.Join(want, ", "),
		Hint: "the pod runs other firmware/kernel/module than the policy lists; if this change is expected, add the value (review it first)"}, path)
}
