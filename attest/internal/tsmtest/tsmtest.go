// Package tsmtest builds go-configfs-tsm fakes whose report subsystem
// answers like a TEE kernel driver: a fixed provider name and an outblob
// computed from the written inblob. For tests of the attest providers.
package tsmtest

import (
	"fmt"
	"os"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
)

// Client returns a faketsm client whose report entries report provider
// (e.g. "tdx_guest") and answer outblob = out(inblob) and auxblob = aux
// (nil aux: the attribute does not exist).
func Client(provider string, out func(inblob []byte) ([]byte, error), aux []byte) *faketsm.Client {
	sub := faketsm.Report611(0)
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "outblob":
			in, ok := e.InAttrs["inblob"]
			if !ok || len(in.Value) == 0 {
				return nil, fmt.Errorf("no inblob")
			}
			return out(in.Value)
		case "auxblob":
			if aux == nil {
				return nil, os.ErrNotExist
			}
			return aux, nil
		case "privlevel_floor":
			return []byte("0\n"), nil
		}
		return nil, os.ErrNotExist
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}
