//go:build linux

package snp

import "github.com/google/go-sev-guest/client"

func openLinuxDevice(path string) (client.Device, error) {
	d := &client.LinuxDevice{}
	if err := d.Open(path); err != nil {
		return nil, err
	}
	return d, nil
}
