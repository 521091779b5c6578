package tsm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"

	"github.com/tdxl/tdxl/attest/internal/tsmtest"
)

func TestRootedClient(t *testing.T) {
	root := t.TempDir()
	dir := configfsi.TsmPrefix + "/report"
	if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	c := NewClient(root)
	p, err := c.MkdirTemp(dir, "entry")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, dir+"/entry") {
		t.Fatalf("MkdirTemp returned %q (must stay in the configfs namespace)", p)
	}
	if _, err := os.Stat(filepath.Join(root, p)); err != nil {
		t.Fatalf("entry not created under root: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, p, "provider"), []byte("tdx_guest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := c.ReadFile(p + "/provider"); err != nil || string(b) != "tdx_guest\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	os.Remove(filepath.Join(root, p, "provider"))
	if err := c.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	// A plain directory has no generation attribute: not a configfs-tsm.
	if _, err := ProviderName(c); err == nil {
		t.Fatal("plain directory taken for configfs-tsm")
	}
	if _, err := ProviderName(NewClient(t.TempDir())); err == nil {
		t.Fatal("missing configfs taken for configfs-tsm")
	}
}

func TestProviderAndReport(t *testing.T) {
	c := tsmtest.Client("tdx_guest", func(in []byte) ([]byte, error) { return append([]byte("Q:"), in...), nil }, []byte("aux"))
	if p, err := ProviderName(c); err != nil || p != ProviderTDX {
		t.Fatalf("ProviderName = %q, %v", p, err)
	}
	resp, err := GetReport(context.Background(), c, ProviderTDX, []byte("rd"), true)
	if err != nil || string(resp.OutBlob) != "Q:rd" || string(resp.AuxBlob) != "aux" {
		t.Fatalf("GetReport = %+v, %v", resp, err)
	}
	if _, err := GetReport(context.Background(), c, ProviderSNP, []byte("rd"), false); err == nil {
		t.Fatal("wrong provider accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GetReport(ctx, c, ProviderTDX, []byte("rd"), false); err == nil {
		t.Fatal("cancelled context ignored")
	}
}
