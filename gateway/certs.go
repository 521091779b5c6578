package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tdxl/tdxl/gateway/envelope"
)

// certSource supplies the gateway's TLS certificate(s). Implementations call
// notify for every certificate they start serving (at start and on renewal
// or reload), so that the gateway quotes the new key.
type certSource interface {
	// start obtains the initial certificate(s); the TLS listener is already
	// accepting (ACME answers TLS-ALPN-01 on it).
	start(ctx context.Context) error
	// getCertificate is the tls.Config callback.
	getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
	// current returns the certificates served now (for readiness and
	// pre-quoting).
	current() []*tls.Certificate
	// nextProtos are extra ALPN protocols (acme-tls/1).
	nextProtos() []string
	// run maintains the certificates (rotation, reload) until ctx is done.
	run(ctx context.Context)
	close()
}

// certID identifies a certificate: SHA-256 of the leaf DER. Evidence is
// cached per certificate, so a re-issued certificate gets a fresh quote even
// when it keeps its key.
type certID [32]byte

func idOf(c *tls.Certificate) certID { return sha256.Sum256(c.Certificate[0]) }

// leafOf returns the parsed leaf, parsing it if the tls.Certificate lacks it.
func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	return x509.ParseCertificate(c.Certificate[0])
}

// signerOf returns the certificate's private key as a crypto.Signer whose
// public half matches the leaf.
func signerOf(c *tls.Certificate) (crypto.Signer, *x509.Certificate, error) {
	leaf, err := leafOf(c)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing certificate: %w", err)
	}
	s, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("private key %T is not a crypto.Signer", c.PrivateKey)
	}
	spki, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil || !bytes.Equal(spki, leaf.RawSubjectPublicKeyInfo) {
		return nil, nil, errors.New("private key does not match the certificate")
	}
	if _, err := envelope.AlgorithmFor(s.Public()); err != nil {
		return nil, nil, err
	}
	return s, leaf, nil
}

// ---- self-signed ----

// selfSigned generates a P-256 key in memory and a self-signed certificate
// embedding the key's cached evidence; it rotates key and certificate after
// 2/3 of the validity.
type selfSigned struct {
	names    []string
	validity time.Duration
	// evidence returns the cached evidence message over key (quoting it).
	evidence func(ctx context.Context, key crypto.Signer) ([]byte, error)
	// adopt registers a new certificate with the gateway along with the
	// evidence message already made for its key.
	adopt func(cert *tls.Certificate, msg []byte)
	// onError reports a failed rotation (the old certificate stays).
	onError func(error)

	mu   sync.RWMutex
	cert *tls.Certificate
}

func defaultSelfSignedNames() []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	return names
}

func (s *selfSigned) start(ctx context.Context) error { return s.rotate(ctx) }

func (s *selfSigned) rotate(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating TLS key: %w", err)
	}
	msg, err := s.evidence(ctx, key)
	if err != nil {
		return fmt.Errorf("quoting the new TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("generating serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tdxl-gateway (attested, self-signed)"},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(s.validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if msg != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: envelope.EvidenceExtensionOID, Value: msg}}
	}
	for _, n := range s.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("creating self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing self-signed certificate: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	s.adopt(cert, msg)
	s.mu.Lock()
	s.cert = cert
	s.mu.Unlock()
	return nil
}

func (s *selfSigned) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cert == nil {
		return nil, errors.New("no certificate yet")
	}
	return s.cert, nil
}

func (s *selfSigned) current() []*tls.Certificate {
	c, err := s.getCertificate(nil)
	if err != nil {
		return nil
	}
	return []*tls.Certificate{c}
}

func (s *selfSigned) nextProtos() []string { return nil }

func (s *selfSigned) run(ctx context.Context) {
	for {
		t := time.NewTimer(s.validity * 2 / 3)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		for err := s.rotate(ctx); err != nil; err = s.rotate(ctx) {
			// Keep serving the old certificate; retry in a minute.
			if s.onError != nil {
				s.onError(err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
		}
	}
}

func (s *selfSigned) close() {}

// ---- files ----

// fileSource serves a certificate and key from PEM files, re-read when
// their modification time or size changes.
type fileSource struct {
	certFile, keyFile string
	interval          time.Duration
	notify            func(*tls.Certificate)
	onError           func(error)

	mu    sync.RWMutex
	cert  *tls.Certificate
	stamp string
}

func (f *fileSource) fileStamp() (string, error) {
	var b []byte
	for _, p := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		b = fmt.Appendf(b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return string(b), nil
}

func (f *fileSource) load() error {
	stamp, err := f.fileStamp()
	if err != nil {
		return fmt.Errorf("reading TLS files: %w", err)
	}
	f.mu.RLock()
	same := stamp == f.stamp
	f.mu.RUnlock()
	if same {
		return nil
	}
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("loading TLS files: %w", err)
	}
	if _, _, err := signerOf(&c); err != nil {
		return fmt.Errorf("loading TLS files: %w", err)
	}
	f.mu.Lock()
	f.cert, f.stamp = &c, stamp
	f.mu.Unlock()
	f.notify(&c)
	return nil
}

func (f *fileSource) start(context.Context) error { return f.load() }

func (f *fileSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.cert == nil {
		return nil, errors.New("no certificate loaded")
	}
	return f.cert, nil
}

func (f *fileSource) current() []*tls.Certificate {
	c, err := f.getCertificate(nil)
	if err != nil {
		return nil
	}
	return []*tls.Certificate{c}
}

func (f *fileSource) nextProtos() []string { return nil }

func (f *fileSource) run(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f.load(); err != nil {
				f.onError(err) // keep serving the previous certificate
			}
		}
	}
}

func (f *fileSource) close() {}
