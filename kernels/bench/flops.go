package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
)

// archConfig holds the config.json fields that identify the SDXL architecture.
type archConfig struct {
	BlockOut []int `json:"block_out_channels"`
	CrossDim any   `json:"cross_attention_dim"`
}

func readArch(path string) (archConfig, bool) {
	var a archConfig
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &a) != nil {
		return a, false
	}
	return a, true
}

// workGFLOP is the work of one image (batch 1) in GFLOP per stage; zero when unknown.
type workGFLOP struct{ te, unetStep, vae float64 }

func (w workGFLOP) image(steps int) float64 { return w.te + float64(steps)*w.unetStep + w.vae }

// sdxlWork gives the FLOPs of the SDXL architecture (sdxl-turbo: UNet blocks 320/640/1280, text
// context 2048, VAE decoder 128/256/512/512) from ../shared/anchors/inference-perf.md §2 (counted
// from the diffusers configs, 1 MAC = 2 FLOP): text encoders 111.2 GFLOP; UNet step 1,588.8 at 512²
// and 6,761.2 at 1024²; VAE decoder 2,514.5 and 10,470.4. Other sizes use a·p + b·p² fitted through
// those two counts (p = pixels / 512²; the p² term is the attention over all pixels), exact at 512²
// and 1024². For any other architecture (e.g. the tiny test model) the work is unknown (zero).
func sdxlWork(dir string, width, height int) workGFLOP {
	u, ok1 := readArch(filepath.Join(dir, "unet", "config.json"))
	v, ok2 := readArch(filepath.Join(dir, "vae", "config.json"))
	if !ok1 || !ok2 || !slices.Equal(u.BlockOut, []int{320, 640, 1280}) || u.CrossDim != float64(2048) ||
		!slices.Equal(v.BlockOut, []int{128, 256, 512, 512}) {
		return workGFLOP{}
	}
	p := float64(width) * float64(height) / (512 * 512)
	fit := func(at512, at1024 float64) float64 {
		b := (at1024 - 4*at512) / 12
		a := at512 - b
		return a*p + b*p*p
	}
	return workGFLOP{te: 111.2, unetStep: fit(1588.8, 6761.2), vae: fit(2514.5, 10470.4)}
}
