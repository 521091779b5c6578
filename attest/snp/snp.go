// Package snp issues attestation evidence inside an AMD SEV-SNP guest with
// github.com/google/go-sev-guest: an extended report (report + certificate
// table) from configfs-tsm (provider "sev_guest") when available, else
// from /dev/sev-guest. Paths and devices are injectable for tests.
package snp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/attest/internal/tsm"
)

// DevicePath is the SEV guest device.
const DevicePath = "/dev/sev-guest"

// Method says how reports are obtained.
type Method string

// Report methods.
const (
	MethodConfigFS Method = "configfs-tsm"
	MethodDevice   Method = "sev-guest-ioctl"
)

// ErrNotSNP: neither configfs-tsm with provider sev_guest nor /dev/sev-guest
// is present. Wraps attest.ErrNoTEE.
var ErrNotSNP = fmt.Errorf("%w: not an AMD SEV-SNP guest", attest.ErrNoTEE)

// Options configure the provider. The zero value uses the real system.
type Options struct {
	// Root prefixes /sys/kernel/config and /dev paths ("" = "/").
	Root string
	// ConfigFS overrides the configfs-tsm client. nil = an OS client under Root.
	ConfigFS configfsi.Client
	// OpenDevice opens the ioctl device at path (tests: go-sev-guest's
	// testing.Device). nil = client.LinuxDevice.
	OpenDevice func(path string) (client.Device, error)
	// Now is the evidence clock. nil = time.Now.
	Now func() time.Time
	// Logger receives one record per detection. nil discards.
	Logger *slog.Logger
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

// Detect reports which report method is available, or an error wrapping ErrNotSNP.
func Detect(opts Options) (Method, error) {
	if p, err := tsm.ProviderName(opts.configFS()); err == nil && p == tsm.ProviderSNP {
		return MethodConfigFS, nil
	}
	if fi, err := os.Stat(opts.devicePath()); err == nil && !fi.IsDir() {
		return MethodDevice, nil
	}
	return "", ErrNotSNP
}

// Provider issues SEV-SNP evidence; requests are serialised.
type Provider struct {
	opts   Options
	method Method
	mu     sync.Mutex
}

// New detects the report method and returns a provider, or an error
// wrapping ErrNotSNP.
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
	opts.Logger.Info("SEV-SNP guest detected", "method", string(m))
	return &Provider{opts: opts, method: m}, nil
}

// Method returns the report method in use.
func (p *Provider) Method() Method { return p.method }

// TEE returns attest.TEESEVSNP.
func (p *Provider) TEE() attest.TEE { return attest.TEESEVSNP }

// Issue obtains a signed attestation report over reportData and the host's
// certificate table (VCEK/VLEK chain, when the host provides it).
func (p *Provider) Issue(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var report, certs []byte
	var err error
	switch p.method {
	case MethodConfigFS:
		report, certs, err = getConfigFS(ctx, p.opts.configFS(), reportData)
	default:
		report, certs, err = p.getDevice(reportData)
	}
	if err != nil {
		return nil, fmt.Errorf("getting SEV-SNP report (%s): %w", p.method, err)
	}
	if len(report) < abi.ReportSize {
		return nil, fmt.Errorf("getting SEV-SNP report (%s): %d bytes, want %d", p.method, len(report), abi.ReportSize)
	}
	report = report[:abi.ReportSize]
	if _, err := abi.ReportToProto(report); err != nil {
		return nil, fmt.Errorf("getting SEV-SNP report (%s): malformed report: %w", p.method, err)
	}
	return &attest.Evidence{Version: attest.Version, TEE: attest.TEESEVSNP, Quote: report, Certs: certs,
		Time: p.opts.Now().UTC()}, nil
}

// getConfigFS returns the report (outblob) and the certificate table
// (auxblob, empty when the host has none).
func getConfigFS(ctx context.Context, c configfsi.Client, rd [64]byte) ([]byte, []byte, error) {
	resp, err := tsm.GetReport(ctx, c, tsm.ProviderSNP, rd[:], true)
	if err != nil {
		return nil, nil, err
	}
	var certs []byte
	if len(resp.AuxBlob) > 0 {
		certs = resp.AuxBlob
	}
	return resp.OutBlob, certs, nil
}

func (p *Provider) getDevice(rd [64]byte) ([]byte, []byte, error) {
	open := p.opts.OpenDevice
	if open == nil {
		open = openLinuxDevice
	}
	d, err := open(p.opts.devicePath())
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	return client.GetRawExtendedReport(d, rd)
}
