package verifier

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// checkQuoteSignatures verifies the three signatures that tie a quote to its PCK certificate,
// independently of go-tdx-guest (whose verify refuses PCK chains issued by the "Intel SGX PCK
// Processor CA", since it expects the Platform CA by name):
//
//  1. the attestation key's ECDSA P-256 signature over SHA-256(header ‖ TD quote body);
//  2. the QE report's signature by the PCK leaf key;
//  3. QE REPORTDATA == SHA-256(attestation key ‖ QE authentication data) ‖ 32 zero bytes,
//     which binds the attestation key to the quoting enclave the PCK vouches for.
func checkQuoteSignatures(q *tdxQuote) error {
	var signed []byte
	var sd *pb.Ecdsa256BitQuoteV4AuthData
	hdr := func(h *pb.Header) ([]byte, error) { return abi.HeaderToAbiBytes(h) }
	switch v := q.proto.(type) {
	case *pb.QuoteV4:
		h, err := hdr(v.GetHeader())
		if err != nil {
			return err
		}
		b, err := abi.TdQuoteBodyToAbiBytes(v.GetTdQuoteBody())
		if err != nil {
			return err
		}
		signed, sd = append(h, b...), v.GetSignedData()
	case *pb.QuoteV5:
		h, err := hdr(v.GetHeader())
		if err != nil {
			return err
		}
		b, err := abi.TdQuoteBodyDescriptorToAbiBytes(v.GetTdQuoteBodyDescriptor())
		if err != nil {
			return err
		}
		signed, sd = append(h, b...), v.GetSignedData()
	default:
		return fmt.Errorf("unsupported quote type %T", q.proto)
	}
	ak := sd.GetEcdsaAttestationKey()
	if len(ak) != 64 {
		return fmt.Errorf("attestation key is %d bytes", len(ak))
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(ak[:32]), Y: new(big.Int).SetBytes(ak[32:])}
	if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
		return errors.New("attestation key is not on P-256")
	}
	if !verifyRS(pub, signed, sd.GetSignature()) {
		return errors.New("the attestation key's signature over header and TD quote body does not verify")
	}
	qe := sd.GetCertificationData().GetQeReportCertificationData()
	rawQE, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		return fmt.Errorf("QE report: %v", err)
	}
	der, err := abi.SignatureToDER(qe.GetQeReportSignature())
	if err != nil {
		return fmt.Errorf("QE report signature: %v", err)
	}
	if err := q.chain.PCKCertificate.CheckSignature(x509.ECDSAWithSHA256, rawQE, der); err != nil {
		return errors.New("the QE report is not signed by the PCK certificate's key")
	}
	want := sha256.Sum256(append(append([]byte(nil), ak...), qe.GetQeAuthData().GetData()...))
	rd := qe.GetQeReport().GetReportData()
	if len(rd) != 64 || !bytes.Equal(rd[:32], want[:]) || !bytes.Equal(rd[32:], make([]byte, 32)) {
		return errors.New("QE REPORTDATA does not bind the attestation key")
	}
	return nil
}

func verifyRS(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	return ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}
