package measure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestModelManifest(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"model_index.json":                         []byte(`{"_class_name":"StableDiffusionXLPipeline"}`),
		"unet/diffusion_pytorch_model.safetensors": bytes.Repeat([]byte{7}, 3<<20+5),
		"unet/config.json":                         []byte("{}"),
		"text_encoder/model.safetensors":           []byte("weights"),
		".cache/huggingface/download/x.metadata":   []byte("changes every download"),
		"vae/.hidden":                              []byte("skipped"),
	}
	for p, d := range files {
		writeFile(t, filepath.Join(dir, p), d)
	}
	// A symlinked file (Hugging Face snapshot layout) is followed.
	writeFile(t, filepath.Join(dir, "..", "blob"), []byte("blob"))
	if err := os.Symlink(filepath.Join(dir, "..", "blob"), filepath.Join(dir, "vae", "link.bin")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m, err := ModelManifest(context.Background(), dir, ManifestOptions{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), ProgressInterval: time.Millisecond, Workers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Expected canonical text, built independently.
	want := "tdxl/model-manifest/v1\n" +
		fmt.Sprintf("model_index.json\t%d\t%s\n", len(files["model_index.json"]), hexSum(files["model_index.json"])) +
		fmt.Sprintf("text_encoder/model.safetensors\t7\t%s\n", hexSum([]byte("weights"))) +
		fmt.Sprintf("unet/config.json\t2\t%s\n", hexSum([]byte("{}"))) +
		fmt.Sprintf("unet/diffusion_pytorch_model.safetensors\t%d\t%s\n", 3<<20+5, hexSum(files["unet/diffusion_pytorch_model.safetensors"])) +
		fmt.Sprintf("vae/link.bin\t4\t%s\n", hexSum([]byte("blob")))
	if got := string(m.Canonical()); got != want {
		t.Fatalf("canonical manifest:\n%s\nwant:\n%s", got, want)
	}
	if m.Digest() != sha256.Sum256([]byte(want)) {
		t.Fatal("digest is not SHA-256 of the canonical form")
	}
	if !strings.Contains(logs.String(), "measured model") || !strings.Contains(logs.String(), "sha256=") {
		t.Fatalf("no end log record:\n%s", logs.String())
	}
	// Same content, different worker count: same digest. One byte changed: different.
	m2, err := ModelManifest(context.Background(), dir, ManifestOptions{Workers: 1})
	if err != nil || m2.Digest() != m.Digest() {
		t.Fatalf("not reproducible: %v", err)
	}
	writeFile(t, filepath.Join(dir, "unet/config.json"), []byte("{ }"))
	m3, _ := ModelManifest(context.Background(), dir, ManifestOptions{})
	if m3.Digest() == m.Digest() {
		t.Fatal("a changed file did not change the digest")
	}
	// Hidden files count when asked.
	m4, _ := ModelManifest(context.Background(), dir, ManifestOptions{IncludeHidden: true})
	if len(m4.Entries) != len(m3.Entries)+2 {
		t.Fatalf("IncludeHidden: %d entries", len(m4.Entries))
	}
}

func TestModelManifestErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := ModelManifest(context.Background(), empty, ManifestOptions{}); !errors.Is(err, ErrBadModelDir) {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := ModelManifest(context.Background(), filepath.Join(empty, "missing"), ManifestOptions{}); err == nil {
		t.Fatal("missing dir accepted")
	}
	tab := t.TempDir()
	writeFile(t, filepath.Join(tab, "a\tb"), []byte("x"))
	if _, err := ModelManifest(context.Background(), tab, ManifestOptions{}); !errors.Is(err, ErrBadModelDir) {
		t.Fatalf("tab in name: %v", err)
	}
	loop := t.TempDir()
	writeFile(t, filepath.Join(loop, "f"), []byte("x"))
	if err := os.Symlink(loop, filepath.Join(loop, "self")); err != nil {
		t.Fatal(err)
	}
	if _, err := ModelManifest(context.Background(), loop, ManifestOptions{}); !errors.Is(err, ErrBadModelDir) {
		t.Fatalf("symlinked dir: %v", err)
	}
	big := t.TempDir()
	writeFile(t, filepath.Join(big, "w"), make([]byte, 4<<20))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ModelManifest(ctx, big, ManifestOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestFileDigest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bin")
	data := bytes.Repeat([]byte("tdxl"), 1<<19)
	writeFile(t, p, data)
	got, err := FileDigest(context.Background(), p)
	if err != nil || got != sha256.Sum256(data) {
		t.Fatalf("FileDigest = %x, %v", got, err)
	}
	if _, err := FileDigest(context.Background(), p+".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// BenchmarkModelManifest reports the hashing throughput (page-cached files).
func BenchmarkModelManifest(b *testing.B) {
	dir := b.TempDir()
	const size = 64 << 20
	for i := 0; i < 4; i++ {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("part%d.safetensors", i)), bytes.Repeat([]byte{byte(i)}, size/4))
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ModelManifest(context.Background(), dir, ManifestOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
