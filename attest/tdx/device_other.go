//go:build !linux

package tdx

import (
	"fmt"

	"github.com/google/go-tdx-guest/client"
)

func openLinuxDevice(path string) (client.Device, error) {
	return nil, fmt.Errorf("%s: TDX guest devices exist only on Linux", path)
}
