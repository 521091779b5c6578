// Package tdx issues attestation evidence inside an Intel TDX trust domain
// with github.com/google/go-tdx-guest: quotes come from configfs-tsm
// (/sys/kernel/config/tsm/report, provider "tdx_guest", Linux ≥ 6.7) when
// available, else from the legacy /dev/tdx_guest ioctl. Every path is
// injectable (Options.Root, Options.ConfigFS, Options.OpenDevice) so
// detection and issuing are tested against fakes.
package tdx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/client"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/internal/tsm"
)

// DevicePath is the legacy TDX guest device.
const DevicePath = "/dev/tdx_guest"

// Method says how quotes are obtained.
type Method string

// Quote methods.
const (
	MethodConfigFS Method = "configfs-tsm"
	MethodDevice   Method = "tdx_guest-ioctl"
)

// ErrNotTDX: neither configfs-tsm with provider tdx_guest nor /dev/tdx_guest
// is present. Wraps attest.ErrNoTEE.
var ErrNotTDX = fmt.Errorf("%w: not an Intel TDX guest", attest.ErrNoTEE)

// Options configure the provider. The zero value uses the real system.
type Options struct {
	// Root prefixes /sys/kernel/config and /dev paths ("" = "/").
	Root string
	// ConfigFS overrides the configfs-tsm client (tests: go-configfs-tsm's
	// faketsm). nil = an OS client under Root.
	ConfigFS configfsi.Client
	// OpenDevice opens the ioctl device at path (tests: go-tdx-guest's
	// testing.Device). nil = client.LinuxDevice.
	OpenDevice func(path string) (client.Device, error)
	// Now is the evidence clock. nil = time.Now.
	Now func() time.Time
	// Logger receives one record per detection. nil discards.
	Logger *slog.Logger
}

// Provider issues TDX evidence. Quote requests are serialised (the device
// and configfs entries are per-process resources and the host's quoting
// service is slow).
type Provider struct {
	opts   Options
	method Method
	cfs    configfsi.Client
	mu     sync.Mutex
}

// Detect reports which quote method is available, or an error wrapping
// ErrNotTDX.
func Detect(opts Options) (Method, error) {
	cfs := opts.configFS()
	if p, err := tsm.ProviderName(cfs); err == nil && p == tsm.ProviderTDX {
		return MethodConfigFS, nil
	}
	if fi, err := os.Stat(opts.devicePath()); err == nil && !fi.IsDir() {
		return MethodDevice, nil
	}
	return "", ErrNotTDX
}

func (o Options) configFS() configfsi.Client {
	if o.ConfigFS != nil {
		return o.ConfigFS
	}
	return tsm.NewClient(o.Root)
}

func (o Options) devicePath() string {
	root := o.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, DevicePath)
}

// New detects the quote method and returns a provider, or an error wrapping
// ErrNotTDX.
func New(opts Options) (*Provider, error) {
	m, err := Detect(opts)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger.Info("TDX guest detected", "method", string(m))
	return &Provider{opts: opts, method: m, cfs: opts.configFS()}, nil
}

// Method returns the quote method in use.
func (p *Provider) Method() Method { return p.method }

// TEE returns attest.TEETDX.
func (p *Provider) TEE() attest.TEE { return attest.TEETDX }

// Issue obtains a quote over reportData. The quote is parsed once (quote v4
// or v5) so that a malformed answer from the host is reported here rather
// than by the verifier.
func (p *Provider) Issue(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var raw []byte
	var err error
	switch p.method {
	case MethodConfigFS:
		raw, err = getConfigFS(ctx, p.cfs, reportData)
	case MethodDevice:
		raw, err = p.getDevice(reportData)
	default:
		err = errors.New("no quote method")
	}
	if err != nil {
		return nil, fmt.Errorf("getting TDX quote (%s): %w", p.method, err)
	}
	if _, err := abi.QuoteToProto(raw); err != nil {
		return nil, fmt.Errorf("getting TDX quote (%s): malformed quote: %w", p.method, err)
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEETDX, Quote: raw, Time: p.opts.Now().UTC()}, nil
}

func getConfigFS(ctx context.Context, c configfsi.Client, rd [64]byte) ([]byte, error) {
	resp, err := tsm.GetReport(ctx, c, tsm.ProviderTDX, rd[:], false)
	if err != nil {
		return nil, err
	}
	return resp.OutBlob, nil
}

func (p *Provider) getDevice(rd [64]byte) ([]byte, error) {
	open := p.opts.OpenDevice
	if open == nil {
		open = openLinuxDevice
	}
	d, err := open(p.opts.devicePath())
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return client.GetRawQuote(d, rd)
}
