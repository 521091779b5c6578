// Package tsm talks to the Linux configfs-tsm report interface
// (/sys/kernel/config/tsm/report) through go-configfs-tsm, with the
// filesystem root injectable so that providers can be tested against fake
// trees or go-configfs-tsm's faketsm.
package tsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/report"
)

// Provider names the kernel reports in the "provider" attribute.
const (
	ProviderTDX = "tdx_guest"
	ProviderSNP = "sev_guest"
)

// rooted is a configfsi.Client whose paths (always under
// configfsi.TsmPrefix) live below root.
type rooted struct{ root string }

// NewClient returns an OS-backed configfs client rooted at root ("" = "/").
func NewClient(root string) configfsi.Client {
	if root == "" {
		root = "/"
	}
	return rooted{root: root}
}

func (c rooted) real(name string) string { return filepath.Join(c.root, filepath.FromSlash(name)) }

// MkdirTemp implements configfsi.Client; the returned path is unrooted.
func (c rooted) MkdirTemp(dir, pattern string) (string, error) {
	p, err := os.MkdirTemp(c.real(dir), pattern)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(filepath.Join(dir, filepath.Base(p))), nil
}

// ReadFile implements configfsi.Client.
func (c rooted) ReadFile(name string) ([]byte, error) { return os.ReadFile(c.real(name)) }

// ReadDir implements configfsi.Client.
func (c rooted) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(c.real(name)) }

// WriteFile implements configfsi.Client (configfs attributes are written
// in place, mode 0220 as the kernel expects).
func (c rooted) WriteFile(name string, b []byte) error { return os.WriteFile(c.real(name), b, 0o220) }

// RemoveAll implements configfsi.Client: configfs entries are removed with
// rmdir, never recursively.
func (c rooted) RemoveAll(name string) error { return os.Remove(c.real(name)) }

// ProviderName creates a report entry, reads its provider attribute (e.g.
// "tdx_guest"), and removes the entry; no quote is generated. An error means configfs-tsm reports
// are not available.
func ProviderName(c configfsi.Client) (string, error) {
	r, err := report.Create(c, &report.Request{})
	if err != nil {
		return "", fmt.Errorf("configfs-tsm: %w", err)
	}
	// Writing inblob first costs nothing (no quote is made until outblob is
	// read) and makes the entry's generation non-zero, which faketsm needs.
	err = r.WriteOption("inblob", make([]byte, 64))
	var p []byte
	if err == nil {
		p, err = r.ReadOption("provider")
	}
	derr := r.Destroy()
	if err != nil {
		return "", fmt.Errorf("configfs-tsm: reading provider: %w", err)
	}
	if derr != nil {
		return "", fmt.Errorf("configfs-tsm: removing report entry: %w", derr)
	}
	return strings.TrimSpace(string(p)), nil
}

// maxAttempts bounds retries when another process writes the same report
// entry concurrently (the kernel's generation counter moves).
const maxAttempts = 5

// GetReport writes inblob, reads outblob (and auxblob when aux), checks that
// the provider is want, and removes the entry. It retries on generation
// races and honours ctx between attempts.
func GetReport(ctx context.Context, c configfsi.Client, want string, inblob []byte, aux bool) (*report.Response, error) {
	var last error
	for i := 0; i < maxAttempts; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := report.Get(c, &report.Request{InBlob: inblob, GetAuxBlob: aux})
		if err == nil {
			if got := strings.TrimSpace(resp.Provider); got != want {
				return nil, fmt.Errorf("configfs-tsm: provider %q, want %q", got, want)
			}
			return resp, nil
		}
		last = err
		var gen *report.GenerationErr
		if !errors.As(err, &gen) && report.GetGenerationErr(err) == nil {
			break
		}
	}
	return nil, fmt.Errorf("configfs-tsm report: %w", last)
}
