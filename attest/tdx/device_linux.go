//go:build linux

package tdx

import "github.com/google/go-tdx-guest/client"

func openLinuxDevice(path string) (client.Device, error) {
	d := &client.LinuxDevice{}
	if err := d.Open(path); err != nil {
		return nil, err
	}
	return d, nil
}
