package bench

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestSDXLWork: the FLOP counts are the anchors' at 512² and 1024² for the real sdxl-turbo configs,
// and unknown (zero) for another architecture.
func TestSDXLWork(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "golden", "sdxl-turbo-configs")
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("sdxl-turbo configs missing: %v", err)
		}
		t.Skipf("sdxl-turbo configs missing: %v", err)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6*want }
	w := sdxlWork(dir, 512, 512)
	if !near(w.unetStep, 1588.8) || !near(w.vae, 2514.5) || !near(w.image(4), 8980.9) {
		t.Errorf("512²: %+v, image %.1f", w, w.image(4))
	}
	w = sdxlWork(dir, 1024, 1024)
	if !near(w.unetStep, 6761.2) || !near(w.vae, 10470.4) {
		t.Errorf("1024²: %+v", w)
	}
	if w := sdxlWork(goldenModel(t), 512, 512); w.unetStep != 0 {
		t.Errorf("tiny model: %+v, want unknown", w)
	}
}
