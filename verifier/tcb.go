package verifier

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/tdxl/tdxl/policy"
)

// tcbResult is our own evaluation of the TDX TCB, following Intel's QVL: the platform level,
// the TDX module identity level (when TEE_TCB_SVN[1] > 0), and the QE level, converged.
//
// go-tdx-guest (main, 2026-03) returns the TDX module's status in place of the platform's when
// TEE_TCB_SVN[1] > 0; QVL's convergeTcbStatusWithTdxModuleStatus keeps the platform status unless
// the module is OutOfDate. The vector trustee-tdx-quote6-outofdate-platform proves the difference.
type tcbResult struct {
	Platform, Module, QE string // statuses of the matched levels ("" for no module identity)
	PlatformDate         string
	Converged            string
	Advisories           []string
}

// evaluateTCB matches the quote against the collateral. Errors wrap ErrTCBNotSupported or
// ErrCollateralInvalid.
func evaluateTCB(q *tdxQuote, info *pcs.TcbInfo, qe *pcs.EnclaveIdentity) (*tcbResult, error) {
	if !strings.EqualFold(q.exts.FMSPC, info.Fmspc) { // PCS spells FMSPC in upper case
		return nil, fmt.Errorf("%w: TCB info is for FMSPC %s, the PCK certificate says %s", ErrCollateralInvalid, info.Fmspc, q.exts.FMSPC)
	}
	if !strings.EqualFold(q.exts.PCEID, info.PceID) {
		return nil, fmt.Errorf("%w: TCB info PCEID %s, PCK certificate %s", ErrCollateralInvalid, info.PceID, q.exts.PCEID)
	}
	if !bytes.Equal(info.TdxModule.Mrsigner.Bytes, q.body.mrSignerSeam) {
		return nil, fmt.Errorf("%w: MRSIGNERSEAM %x is not the TDX module signer %x", ErrCollateralInvalid, q.body.mrSignerSeam, info.TdxModule.Mrsigner.Bytes)
	}
	if !maskedEqual(q.body.seamAttributes, info.TdxModule.AttributesMask.Bytes, info.TdxModule.Attributes.Bytes) {
		return nil, fmt.Errorf("%w: SEAMATTRIBUTES %x do not match the TDX module's", ErrCollateralInvalid, q.body.seamAttributes)
	}
	res := &tcbResult{}
	svn := q.body.teeTcbSvn
	var platform *pcs.TcbLevel
	for i := range info.TcbLevels {
		l := &info.TcbLevels[i]
		if cpuSVNAtLeast(q.exts.TCB.CPUSvnComponents, l.Tcb.SgxTcbcomponents) && q.exts.TCB.PCESvn >= l.Tcb.Pcesvn && teeSVNAtLeast(svn, l.Tcb.TdxTcbcomponents) {
			platform = l
			break
		}
	}
	if platform == nil {
		return nil, fmt.Errorf("%w: no TCB level matches PCK CPUSVN %x, PCESVN %d, TEE_TCB_SVN %x", ErrTCBNotSupported, q.exts.TCB.CPUSvnComponents, q.exts.TCB.PCESvn, svn)
	}
	res.Platform, res.PlatformDate = string(platform.TcbStatus), platform.TcbDate
	adv := map[string]bool{}
	for _, a := range platform.AdvisoryIDs {
		adv[a] = true
	}
	res.Converged = res.Platform
	if svn[1] > 0 {
		id := "TDX_" + hex.EncodeToString(svn[1:2])
		var mod *pcs.TdxModuleIdentity
		for i := range info.TdxModuleIdentities {
			if strings.EqualFold(info.TdxModuleIdentities[i].ID, id) {
				mod = &info.TdxModuleIdentities[i]
			}
		}
		if mod == nil {
			return nil, fmt.Errorf("%w: no TDX module identity %s in the TCB info", ErrTCBNotSupported, id)
		}
		if len(mod.Mrsigner.Bytes) > 0 && !bytes.Equal(mod.Mrsigner.Bytes, q.body.mrSignerSeam) {
			return nil, fmt.Errorf("%w: MRSIGNERSEAM is not the signer of %s", ErrCollateralInvalid, id)
		}
		var ml *pcs.TcbLevel
		for i := range mod.TcbLevels {
			if uint32(svn[0]) >= mod.TcbLevels[i].Tcb.Isvsvn {
				ml = &mod.TcbLevels[i]
				break
			}
		}
		if ml == nil {
			return nil, fmt.Errorf("%w: TDX module %s SVN %d below every level", ErrTCBNotSupported, id, svn[0])
		}
		res.Module = string(ml.TcbStatus)
		for _, a := range ml.AdvisoryIDs {
			adv[a] = true
		}
		res.Converged = convergeOutOfDate(res.Converged, res.Module)
	}
	// QE identity.
	rep := q.qeReport
	if len(qe.MiscselectMask.Bytes) != 4 || len(qe.Miscselect.Bytes) != 4 {
		return nil, fmt.Errorf("%w: QE identity MISCSELECT fields have the wrong size", ErrCollateralInvalid)
	}
	mask := binary.LittleEndian.Uint32(qe.MiscselectMask.Bytes)
	if rep.GetMiscSelect()&mask != binary.LittleEndian.Uint32(qe.Miscselect.Bytes)&mask {
		return nil, fmt.Errorf("%w: QE MISCSELECT does not match the QE identity", ErrCollateralInvalid)
	}
	if !maskedEqual(rep.GetAttributes(), qe.AttributesMask.Bytes, qe.Attributes.Bytes) {
		return nil, fmt.Errorf("%w: QE ATTRIBUTES do not match the QE identity", ErrCollateralInvalid)
	}
	if !bytes.Equal(rep.GetMrSigner(), qe.Mrsigner.Bytes) || rep.GetIsvProdId() != uint32(qe.IsvProdID) {
		return nil, fmt.Errorf("%w: the quoting enclave is not Intel's TD QE (MRSIGNER/ISVPRODID)", ErrCollateralInvalid)
	}
	var ql *pcs.TcbLevel
	for i := range qe.TcbLevels {
		if qe.TcbLevels[i].Tcb.Isvsvn <= rep.GetIsvSvn() {
			ql = &qe.TcbLevels[i]
			break
		}
	}
	if ql == nil {
		return nil, fmt.Errorf("%w: QE ISVSVN %d below every QE identity level", ErrTCBNotSupported, rep.GetIsvSvn())
	}
	res.QE = string(ql.TcbStatus)
	for _, a := range ql.AdvisoryIDs {
		adv[a] = true
	}
	res.Converged = convergeOutOfDate(res.Converged, res.QE)
	for a := range adv {
		res.Advisories = append(res.Advisories, a)
	}
	sort.Strings(res.Advisories)
	return res, nil
}

// convergeOutOfDate applies Intel QVL's rule for a secondary component (TDX module, QE): a revoked
// component revokes; an OutOfDate component makes UpToDate/SWHardeningNeeded OutOfDate and the
// Configuration* statuses OutOfDateConfigurationNeeded; anything else keeps the platform status.
func convergeOutOfDate(platform, component string) string {
	switch component {
	case policy.StatusRevoked:
		return policy.StatusRevoked
	case policy.StatusOutOfDate:
		switch platform {
		case policy.StatusUpToDate, policy.StatusSWHardeningNeeded:
			return policy.StatusOutOfDate
		case policy.StatusConfigurationNeeded, policy.StatusConfigurationAndSWHardeningNeeded:
			return policy.StatusOutOfDateConfigurationNeeded
		}
	}
	return platform
}

func cpuSVNAtLeast(have []byte, want []pcs.TcbComponent) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] < want[i].Svn {
			return false
		}
	}
	return true
}

// teeSVNAtLeast compares TEE_TCB_SVN; with a TDX module identity (svn[1] > 0) bytes 0 and 1 are
// the module's and are matched against the identity instead.
func teeSVNAtLeast(svn []byte, want []pcs.TcbComponent) bool {
	if len(svn) != len(want) {
		return false
	}
	start := 0
	if svn[1] > 0 {
		start = 2
	}
	for i := start; i < len(svn); i++ {
		if svn[i] < want[i].Svn {
			return false
		}
	}
	return true
}

func maskedEqual(v, mask, want []byte) bool {
	if len(mask) == 0 {
		return true
	}
	if len(v) != len(mask) || len(want) != len(mask) {
		return false
	}
	for i := range v {
		if v[i]&mask[i] != want[i]&mask[i] {
			return false
		}
	}
	return true
}
