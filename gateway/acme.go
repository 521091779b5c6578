package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// acmeSource obtains and renews certificates through certmagic. Each
// certificate certmagic obtains (the first one and every renewal, which
// brings a new key) is handed to notify, so the gateway quotes it before
// clients can ask for its evidence.
type acmeSource struct {
	cfg     *certmagic.Config
	cache   *certmagic.Cache
	domains []string
	notify  func(*tls.Certificate)
	log     *slog.Logger
}

func newACMESource(c ACMEConfig, listenAddr string, notify func(*tls.Certificate), log *slog.Logger) (*acmeSource, error) {
	host, portStr, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen address %q: %v", ErrConfig, listenAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen port %q", ErrConfig, portStr)
	}
	s := &acmeSource{domains: c.Domains, notify: notify, log: log}
	storage := c.Storage
	if storage == nil {
		storage = newMemStorage()
	}
	var cfg *certmagic.Config
	s.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		RenewCheckInterval: c.RenewCheckInterval,
		Logger:             zap.NewNop(),
	})
	cfg = certmagic.New(s.cache, certmagic.Config{
		Storage:            storage,
		RenewalWindowRatio: c.RenewalWindowRatio,
		OnEvent:            s.onEvent,
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		Logger:             zap.NewNop(),
	})
	cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                   c.CA,
		Email:                c.Email,
		Agreed:               true,
		TrustedRoots:         c.TrustedRoots,
		DisableHTTPChallenge: c.HTTPPort == 0,
		AltHTTPPort:          c.HTTPPort,
		// TLS-ALPN-01 is answered by the gateway's own listener: certmagic
		// finds the address in use and relies on our GetCertificate
		// (cfg.GetCertificate serves the challenge certificate).
		ListenHost:     host,
		AltTLSALPNPort: port,
		Logger:         zap.NewNop(),
	})}
	s.cfg = cfg
	return s, nil
}

func (s *acmeSource) onEvent(ctx context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtaining":
		s.log.Info("acme obtaining certificate", "identifier", data["identifier"])
	case "cert_failed":
		s.log.Error("acme certificate failed", "identifier", data["identifier"], "renewal", data["renewal"], "error", data["error"])
	case "cert_obtained":
		name, _ := data["identifier"].(string)
		s.log.Info("acme certificate obtained", "identifier", name, "renewal", data["renewal"])
		// Quote the new certificate's key before certmagic's maintenance
		// swaps it into the cache. It is read from storage (the event
		// names the keys) so certmagic's cache is left to certmagic.
		certKey, _ := data["certificate_path"].(string)
		keyKey, _ := data["private_key_path"].(string)
		go s.prequote(name, certKey, keyKey)
	}
	return nil
}

func (s *acmeSource) prequote(name, certKey, keyKey string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	certPEM, err := s.cfg.Storage.Load(ctx, certKey)
	if err != nil {
		s.log.Error("loading obtained certificate", "identifier", name, "error", err)
		return
	}
	keyPEM, err := s.cfg.Storage.Load(ctx, keyKey)
	if err != nil {
		s.log.Error("loading obtained certificate key", "identifier", name, "error", err)
		return
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		s.log.Error("parsing obtained certificate", "identifier", name, "error", err)
		return
	}
	s.notify(&c)
}

func (s *acmeSource) start(ctx context.Context) error {
	if err := s.cfg.ManageSync(ctx, s.domains); err != nil {
		return fmt.Errorf("obtaining ACME certificates for %v: %w", s.domains, err)
	}
	for _, c := range s.current() {
		s.notify(c)
	}
	return nil
}

func (s *acmeSource) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" && !isACMEChallenge(hello) {
		// Clients that send no SNI (IP literals) get the first domain's.
		h := *hello
		h.ServerName = s.domains[0]
		hello = &h
	}
	return s.cfg.GetCertificate(hello)
}

func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "acme-tls/1"
}

func (s *acmeSource) current() []*tls.Certificate {
	var out []*tls.Certificate
	for _, d := range s.domains {
		c, err := s.cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: d})
		if err == nil {
			out = append(out, c)
		}
	}
	return out
}

func (s *acmeSource) nextProtos() []string { return []string{"acme-tls/1"} }

func (s *acmeSource) run(ctx context.Context) { <-ctx.Done() } // certmagic's cache maintains

func (s *acmeSource) close() { s.cache.Stop() }

// ---- in-memory certmagic storage ----

// memStorage is a certmagic.Storage that keeps everything (ACME account
// key, certificate keys) in process memory, so no key touches disk.
type memStorage struct {
	mu    sync.Mutex
	data  map[string]memItem
	locks map[string]chan struct{}
}

type memItem struct {
	value    []byte
	modified time.Time
}

func newMemStorage() *memStorage {
	return &memStorage{data: map[string]memItem{}, locks: map[string]chan struct{}{}}
}

func (m *memStorage) Lock(ctx context.Context, name string) error {
	for {
		m.mu.Lock()
		ch, held := m.locks[name]
		if !held {
			m.locks[name] = make(chan struct{})
			m.mu.Unlock()
			return nil
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *memStorage) Unlock(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, held := m.locks[name]
	if !held {
		return fmt.Errorf("unlocking %q: not locked", name)
	}
	delete(m.locks, name)
	close(ch)
	return nil
}

func (m *memStorage) Store(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[key] = memItem{value: append([]byte(nil), value...), modified: time.Now()}
	return nil
}

func (m *memStorage) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), it.value...), nil
}

func (m *memStorage) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.data {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(m.data, k)
		}
	}
	return nil
}

func (m *memStorage) Exists(_ context.Context, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.data {
		if k == key || strings.HasPrefix(k, key+"/") {
			return true
		}
	}
	return false
}

func (m *memStorage) List(_ context.Context, prefix string, recursive bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for k := range m.data {
		rest, ok := strings.CutPrefix(k, prefix+"/")
		if !ok {
			continue
		}
		if !recursive {
			first, _, _ := strings.Cut(rest, "/")
			seen[path.Join(prefix, first)] = true
			continue
		}
		seen[k] = true
		for d := path.Dir(k); d != prefix && strings.HasPrefix(d, prefix+"/"); d = path.Dir(d) {
			seen[d] = true
		}
	}
	if len(seen) == 0 {
		return nil, fs.ErrNotExist
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func (m *memStorage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.data[key]; ok {
		return certmagic.KeyInfo{Key: key, Modified: it.modified, Size: int64(len(it.value)), IsTerminal: true}, nil
	}
	for k := range m.data {
		if strings.HasPrefix(k, key+"/") {
			return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
		}
	}
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

var _ certmagic.Storage = (*memStorage)(nil)

// errNoCert is returned by sources before their first certificate.
var errNoCert = errors.New("no certificate yet")
