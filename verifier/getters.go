package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	tdxtrust "github.com/google/go-tdx-guest/verify/trust"
)

// IntelPCS is the base of Intel's Provisioning Certification Service.
const IntelPCS = "https://api.trustedservices.intel.com"

// EnvPCCS names the environment variable holding a PCCS base URL (as cloud providers run them).
const EnvPCCS = "TDXL_PCCS_URL"

// CollateralOptions configure NewCollateralGetter.
type CollateralOptions struct {
	// PCCS is the base URL of a PCCS (e.g. https://pccs.example:8081); "" = Intel PCS.
	PCCS string
	// CacheDir keeps the last good response of every URL; "" = no cache.
	CacheDir string
	// MaxStale is how old a cached response may be when the network fails. Zero: 24h.
	// (Collateral validity is still checked: an expired TCB info is refused whatever its source.)
	MaxStale time.Duration
	// Client does the HTTP requests. Nil: a client with a 30s timeout.
	Client *http.Client
}

// NewCollateralGetter returns the online collateral source: Intel PCS (or a PCCS), fetched first,
// falling back to the on-disk cache within MaxStale.
func NewCollateralGetter(o CollateralOptions) Getter {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	var g Getter = &httpGetter{client: o.Client, pccs: strings.TrimRight(o.PCCS, "/")}
	if o.CacheDir != "" {
		if o.MaxStale == 0 {
			o.MaxStale = 24 * time.Hour
		}
		g = &cacheGetter{dir: o.CacheDir, maxStale: o.MaxStale, next: g}
	}
	return g
}

type httpGetter struct {
	client *http.Client
	pccs   string
}

// rewrite maps an Intel PCS URL to the PCCS; the root CA CRL comes from PCCS's rootcacrl.
func (g *httpGetter) rewrite(u string) string {
	if g.pccs == "" {
		return u
	}
	if strings.HasPrefix(u, IntelPCS) {
		return g.pccs + strings.TrimPrefix(u, IntelPCS)
	}
	if strings.HasSuffix(u, "IntelSGXRootCA.der") {
		return g.pccs + "/sgx/certification/v4/rootcacrl"
	}
	return u
}

func (g *httpGetter) Get(u string) (map[string][]string, []byte, error) {
	return g.GetContext(context.Background(), u)
}

func (g *httpGetter) GetContext(ctx context.Context, u string) (map[string][]string, []byte, error) {
	target := g.rewrite(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCollateralUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading %s: %v", ErrCollateralUnavailable, target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%w: %s answered %s", ErrCollateralUnavailable, target, resp.Status)
	}
	// PCCS serves the root CA CRL hex-encoded.
	if g.pccs != "" && strings.HasSuffix(target, "/rootcacrl") {
		if b, err := hex.DecodeString(strings.TrimSpace(string(body))); err == nil {
			body = b
		}
	}
	return resp.Header, body, nil
}

type cacheEntry struct {
	URL     string              `json:"url"`
	Fetched time.Time           `json:"fetched"`
	Header  map[string][]string `json:"header,omitempty"`
	Body    []byte              `json:"body"`
}

type cacheGetter struct {
	dir      string
	maxStale time.Duration
	next     Getter
	now      func() time.Time
}

func (c *cacheGetter) path(u string) string {
	h := sha256.Sum256([]byte(u))
	return filepath.Join(c.dir, hex.EncodeToString(h[:16])+".json")
}

func (c *cacheGetter) Get(u string) (map[string][]string, []byte, error) {
	return c.GetContext(context.Background(), u)
}

// GetContext fetches first and stores the answer; on failure it answers from the cache when the
// entry is younger than maxStale.
func (c *cacheGetter) GetContext(ctx context.Context, u string) (map[string][]string, []byte, error) {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	h, b, err := tdxtrust.GetWith(ctx, c.next, u)
	if err == nil {
		c.store(cacheEntry{URL: u, Fetched: now().UTC(), Header: keep(h), Body: b})
		return h, b, nil
	}
	raw, rerr := os.ReadFile(c.path(u))
	if rerr != nil {
		return nil, nil, err
	}
	var e cacheEntry
	if json.Unmarshal(raw, &e) != nil || e.URL != u {
		return nil, nil, err
	}
	if age := now().Sub(e.Fetched); age > c.maxStale {
		return nil, nil, fmt.Errorf("%w (cached copy is %s old, more than %s)", err, age.Round(time.Minute), c.maxStale)
	}
	return e.Header, e.Body, nil
}

// keep drops headers the verifier never reads.
func keep(h map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		for _, want := range []string{pcs.TcbInfoIssuerChainPhrase, pcs.SgxQeIdentityIssuerChainPhrase, pcs.SgxPckCrlIssuerChainPhrase} {
			if strings.EqualFold(k, want) {
				out[want] = v
			}
		}
	}
	return out
}

func (c *cacheGetter) store(e cacheEntry) {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	_ = writeFileAtomic(c.path(e.URL), b, 0o600)
}

// writeFileAtomic writes via a temporary file and rename, so readers never see half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, mode)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}

// chainGetter tries each getter in turn.
type chainGetter []Getter

func (c chainGetter) Get(u string) (map[string][]string, []byte, error) {
	return c.GetContext(context.Background(), u)
}

func (c chainGetter) GetContext(ctx context.Context, u string) (map[string][]string, []byte, error) {
	var errs []error
	for _, g := range c {
		h, b, err := tdxtrust.GetWith(ctx, g, u)
		if err == nil {
			return h, b, nil
		}
		errs = append(errs, err)
	}
	return nil, nil, errors.Join(errs...)
}
