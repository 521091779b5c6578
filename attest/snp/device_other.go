//go:build !linux

package snp

import (
	"fmt"

	"github.com/google/go-sev-guest/client"
)

func openLinuxDevice(path string) (client.Device, error) {
	return nil, fmt.Errorf("%s: SEV guest devices exist only on Linux", path)
}
