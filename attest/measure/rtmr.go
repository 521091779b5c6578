package measure

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tdxl/tdxl/attest"
)

// Extender extends and reads TDX runtime measurement registers.
type Extender interface {
	// Extend performs RTMR[register] = SHA-384(RTMR[register] ‖ digest).
	Extend(register int, digest [48]byte) error
	// Read returns the register's current value.
	Read(register int) ([48]byte, error)
}

// ErrRTMRUnavailable: this kernel (or container) offers no way to extend RTMRs.
var ErrRTMRUnavailable = errors.New("measure: RTMR extension unavailable")

// SysfsRTMRDir is where Linux ≥ 6.16 exposes the TDX measurement registers
// (tsm-mr): writing 48 bytes to rtmrN:sha384 extends RTMR N, reading returns it.
const SysfsRTMRDir = "/sys/class/misc/tdx_guest/measurements"

// SysfsExtender extends RTMRs through the Linux sysfs interface.
type SysfsExtender struct {
	// Root is prefixed to SysfsRTMRDir ("" = "/"), so tests can point it at a
	// fake tree.
	Root string
}

func (s SysfsExtender) path(register int) (string, error) {
	if register < 0 || register > 3 {
		return "", fmt.Errorf("measure: no RTMR%d", register)
	}
	root := s.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, SysfsRTMRDir, fmt.Sprintf("rtmr%d:sha384", register)), nil
}

// Extend writes digest to rtmrN:sha384. A missing file wraps ErrRTMRUnavailable.
func (s SysfsExtender) Extend(register int, digest [48]byte) error {
	p, err := s.path(register)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %v", ErrRTMRUnavailable, err)
		}
		return fmt.Errorf("extending RTMR%d: %w", register, err)
	}
	defer f.Close()
	if _, err := f.Write(digest[:]); err != nil {
		return fmt.Errorf("extending RTMR%d: %w", register, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("extending RTMR%d: %w", register, err)
	}
	return nil
}

// Read reads rtmrN:sha384: 48 raw bytes (also accepted: 96 hex digits). A
// missing file wraps ErrRTMRUnavailable.
func (s SysfsExtender) Read(register int) ([48]byte, error) {
	var out [48]byte
	p, err := s.path(register)
	if err != nil {
		return out, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("%w: %v", ErrRTMRUnavailable, err)
		}
		return out, fmt.Errorf("reading RTMR%d: %w", register, err)
	}
	switch t := bytes.TrimSpace(b); {
	case len(b) == 48:
		copy(out[:], b)
	case len(t) == 96:
		if _, err := hex.Decode(out[:], t); err != nil {
			return out, fmt.Errorf("reading RTMR%d: %w", register, err)
		}
	default:
		return out, fmt.Errorf("reading RTMR%d: %d bytes, want 48", register, len(b))
	}
	return out, nil
}

// FakeExtender is an in-memory RTMR bank with the TDX extend semantics, all
// registers starting at zero. Registers 2 and 3 are extendable (like the
// Linux driver). Fail, when set, is returned by every call.
type FakeExtender struct {
	mu   sync.Mutex
	regs [4][48]byte
	Fail error
}

// Extend implements Extender.
func (f *FakeExtender) Extend(register int, digest [48]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if register != 2 && register != 3 {
		return fmt.Errorf("measure: RTMR%d is not extendable", register)
	}
	f.regs[register] = attest.ExtendRTMR(f.regs[register], digest)
	return nil
}

// Read implements Extender.
func (f *FakeExtender) Read(register int) ([48]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return [48]byte{}, f.Fail
	}
	if register < 0 || register > 3 {
		return [48]byte{}, fmt.Errorf("measure: no RTMR%d", register)
	}
	return f.regs[register], nil
}
