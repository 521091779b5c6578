package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func goldenModel(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TDXL_GOLDEN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "golden", "tiny-sdxl")
	}
	dir = filepath.Join(dir, "model")
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("golden model missing: %v", err)
		}
		t.Skipf("golden model missing: %v", err)
	}
	return dir
}

// TestMainReport runs the benchmark plumbing on the tiny model and checks the report's shape.
func TestMainReport(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--model-dir", goldenModel(t), "--height", "64", "--width", "96",
		"--step", "2", "--batch", "2", "--compare-batch", "1", "--threads", "2", "--gemm", "short", "--peak-seconds", "0.05",
		"--bf16"}, &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var head map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &head); err != nil {
		t.Fatalf("last line is not JSON: %q: %v", lines[len(lines)-1], err)
	}
	for _, k := range []string{"isa", "threads", "peak_gflops", "gemm_pct_of_peak", "te_s", "unet_step_s", "vae_s",
		"image_s", "floor_s", "peak_rss_bytes", "width", "height", "steps", "batch", "dot_peak_gflops", "dot_floor_s"} {
		if _, ok := head[k]; !ok {
			t.Errorf("headline JSON lacks %q: %v", k, head)
		}
	}
	if head["threads"].(float64) != 2 || head["peak_rss_bytes"].(float64) <= 0 || head["peak_gflops"].(float64) <= 0 {
		t.Errorf("headline %v", head)
	}
	for _, want := range []string{"load:", "unet step 2", "vae", "peak RSS", "FMA peak", "isa report",
		"run 1, batch 1:", "per image (best of 1, same run): batch 2 ", "activation arena sized at load for 96x64, batch 2 and 1",
		// the arena was sized at load for both batches: the runs need no fresh memory
		" 0 needed fresh memory"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--repeat", "0"}, &out, &errb); code != ExitUsage {
		t.Errorf("--repeat 0: exit %d, want %d", code, ExitUsage)
	}
	if code := Main(context.Background(), []string{"--compare-batch", "-1"}, &out, &errb); code != ExitUsage {
		t.Errorf("--compare-batch -1: exit %d, want %d", code, ExitUsage)
	}
	if code := Main(context.Background(), []string{"--nope"}, &out, &errb); code != ExitUsage {
		t.Errorf("unknown flag: exit %d, want %d", code, ExitUsage)
	}
	if code := Main(context.Background(), []string{"--model-dir", t.TempDir()}, &out, &errb); code != ExitError {
		t.Errorf("empty model dir: exit %d, want %d", code, ExitError)
	}
}
