package testtee

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// qeAuthData is the QE authentication data carried in every quote (the real
// QE uses 32 bytes too).
var qeAuthData = func() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

func le16(v uint16) []byte {
	b := make([]byte, 2)
	binary.LittleEndian.PutUint16(b, v)
	return b
}

// Body returns the TD quote body t would put in a quote over reportData.
func (t *TDX) Body(reportData [64]byte) *pb.TDQuoteBody {
	o := &t.opts
	t.mu.Lock()
	rtmrs := make([][]byte, 4)
	for i := range rtmrs {
		rtmrs[i] = append([]byte(nil), t.rtmrs[i][:]...)
	}
	t.mu.Unlock()
	return &pb.TDQuoteBody{
		TeeTcbSvn:      append([]byte(nil), o.TEETCBSVN...),
		MrSeam:         append([]byte(nil), o.MRSEAM...),
		MrSignerSeam:   append([]byte(nil), o.MRSIGNERSEAM...),
		SeamAttributes: make([]byte, 8),
		TdAttributes:   append([]byte(nil), o.TDAttributes...),
		Xfam:           append([]byte(nil), o.XFAM...),
		MrTd:           append([]byte(nil), o.MRTD...),
		MrConfigId:     append([]byte(nil), o.MRConfigID...),
		MrOwner:        append([]byte(nil), o.MROwner...),
		MrOwnerConfig:  append([]byte(nil), o.MROwnerConfig...),
		Rtmrs:          rtmrs,
		ReportData:     append([]byte(nil), reportData[:]...),
	}
}

// Quote returns a raw TDX quote over reportData (version 4, or 5 with a
// TDX 1.5 body when TDXOptions.QuoteVersion is 5), signed the way Intel's
// quoting enclave signs: the attestation key signs header ‖ body, the QE
// report binds SHA-256(attestation key ‖ QE auth data) and is signed by the
// PCK key, and the PCK chain (leaf ‖ intermediate ‖ root) is embedded.
func (t *TDX) Quote(reportData [64]byte) ([]byte, error) {
	var q any
	var err error
	if t.opts.QuoteVersion == 5 {
		q, err = t.quoteV5(reportData)
	} else {
		q, err = t.QuoteProto(reportData)
	}
	if err != nil {
		return nil, err
	}
	raw, err := abi.QuoteToAbiBytes(q)
	if err != nil {
		return nil, fmt.Errorf("testtee: serialising quote: %w", err)
	}
	return raw, nil
}

func (t *TDX) header(version uint32) *pb.Header {
	return &pb.Header{
		Version:            version,
		AttestationKeyType: abi.AttestationKeyType,
		TeeType:            abi.TeeTDX,
		PceSvn:             le16(t.opts.PCESVN),
		QeSvn:              le16(t.opts.QESVN),
		QeVendorId:         append([]byte(nil), intelQEVendorID...),
		UserData:           make([]byte, 20),
	}
}

// authData returns the quote's signature data, still without the
// attestation key's signature, and its encoded size.
func (t *TDX) authData() (*pb.Ecdsa256BitQuoteV4AuthData, uint32, error) {
	o := &t.opts
	attPub, err := rawPublicKey(&t.attKey.PublicKey)
	if err != nil {
		return nil, 0, err
	}
	qeRD := sha256.Sum256(append(append([]byte(nil), attPub...), qeAuthData...))
	qeReport := &pb.EnclaveReport{
		CpuSvn:     append([]byte(nil), o.CPUSVN[:]...),
		MiscSelect: 0,
		Reserved1:  make([]byte, 28),
		Attributes: append([]byte{0x11}, make([]byte, 15)...),
		MrEnclave:  label48("qe mrenclave")[:32],
		Reserved2:  make([]byte, 32),
		MrSigner:   append([]byte(nil), qeMRSigner[:]...),
		Reserved3:  make([]byte, 96),
		IsvProdId:  qeISVProdID,
		IsvSvn:     uint32(o.QESVN),
		Reserved4:  make([]byte, 60),
		ReportData: append(qeRD[:], make([]byte, 32)...),
	}
	qeReportBytes, err := abi.EnclaveReportToAbiBytes(qeReport)
	if err != nil {
		return nil, 0, fmt.Errorf("testtee: serialising QE report: %w", err)
	}
	qeSig, err := rawSignature(t.pck.key, qeReportBytes)
	if err != nil {
		return nil, 0, err
	}
	chain := append([]byte(nil), t.chainPEM...)
	certData := &pb.CertificationData{
		CertificateDataType: 6,
		Size:                uint32(384 + 64 + 2 + len(qeAuthData) + 6 + len(chain)),
		QeReportCertificationData: &pb.QEReportCertificationData{
			QeReport:          qeReport,
			QeReportSignature: qeSig,
			QeAuthData:        &pb.QeAuthData{ParsedDataSize: uint32(len(qeAuthData)), Data: append([]byte(nil), qeAuthData...)},
			PckCertificateChainData: &pb.PCKCertificateChainData{
				CertificateDataType: 5,
				Size:                uint32(len(chain)),
				PckCertChain:        chain,
			},
		},
	}
	ad := &pb.Ecdsa256BitQuoteV4AuthData{EcdsaAttestationKey: attPub, CertificationData: certData}
	return ad, 64 + 64 + 6 + certData.Size, nil
}

// QuoteProto is the version-4 quote before serialisation, for tests that
// want to alter a field and re-sign with SignQuote.
func (t *TDX) QuoteProto(reportData [64]byte) (*pb.QuoteV4, error) {
	ad, size, err := t.authData()
	if err != nil {
		return nil, err
	}
	q := &pb.QuoteV4{Header: t.header(4), TdQuoteBody: t.Body(reportData), SignedDataSize: size, SignedData: ad}
	if err := t.SignQuote(q); err != nil {
		return nil, err
	}
	return q, nil
}

// quoteV5 builds a version-5 quote with a TDX 1.5 body (type 3: TEE_TCB_SVN2
// and MRSERVICETD after the v4 fields).
func (t *TDX) quoteV5(reportData [64]byte) (*pb.QuoteV5, error) {
	ad, size, err := t.authData()
	if err != nil {
		return nil, err
	}
	b := t.Body(reportData)
	desc := &pb.TDQuoteBodyDescriptor{
		TdQuoteBodyType: 3,
		TdQuoteBodySize: 648,
		TdQuoteBodyV5: &pb.TDQuoteBodyV5{
			TeeTcbSvn: b.TeeTcbSvn, MrSeam: b.MrSeam, MrSignerSeam: b.MrSignerSeam, SeamAttributes: b.SeamAttributes,
			TdAttributes: b.TdAttributes, Xfam: b.Xfam, MrTd: b.MrTd, MrConfigId: b.MrConfigId, MrOwner: b.MrOwner,
			MrOwnerConfig: b.MrOwnerConfig, Rtmrs: b.Rtmrs, ReportData: b.ReportData,
			TeeTcbSvn2:  append([]byte(nil), b.TeeTcbSvn...),
			MrServiceTd: make([]byte, 48),
		},
	}
	q := &pb.QuoteV5{Header: t.header(5), TdQuoteBodyDescriptor: desc, SignedDataSize: int32(size), SignedData: ad}
	hb, err := abi.HeaderToAbiBytes(q.GetHeader())
	if err != nil {
		return nil, fmt.Errorf("testtee: serialising header: %w", err)
	}
	db, err := abi.TdQuoteBodyDescriptorToAbiBytes(desc)
	if err != nil {
		return nil, fmt.Errorf("testtee: serialising body: %w", err)
	}
	if ad.Signature, err = rawSignature(t.attKey, append(hb, db...)); err != nil {
		return nil, err
	}
	return q, nil
}

// SignQuote (re)computes q's attestation-key signature over header ‖ body.
func (t *TDX) SignQuote(q *pb.QuoteV4) error {
	hb, err := abi.HeaderToAbiBytes(q.GetHeader())
	if err != nil {
		return fmt.Errorf("testtee: serialising header: %w", err)
	}
	bb, err := abi.TdQuoteBodyToAbiBytes(q.GetTdQuoteBody())
	if err != nil {
		return fmt.Errorf("testtee: serialising body: %w", err)
	}
	sig, err := rawSignature(t.attKey, append(hb, bb...))
	if err != nil {
		return err
	}
	q.SignedData.Signature = sig
	return nil
}
