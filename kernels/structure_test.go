package kernels

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tdxl/tdxl/kernels/model"
)

// TestStructureMatchesSpecs builds the C++ module tree (no weights) from the tiny golden config and
// from the real stabilityai/sdxl-turbo configs, and checks that the parameters it expects are
// exactly package model's tensor specs (names and shapes): the same code serves both sizes.
func TestStructureMatchesSpecs(t *testing.T) {
	gold := goldenDir(t)
	dirs := map[string]string{"tiny": filepath.Join(gold, "model")}
	real := filepath.Join(gold, "..", "sdxl-turbo-configs")
	if _, err := os.Stat(filepath.Join(real, "unet", "config.json")); err == nil {
		dirs["sdxl-turbo"] = withTokenizerFiles(t, real, filepath.Join(gold, "model"))
	} else if os.Getenv("CI") != "" {
		t.Fatalf("sdxl-turbo-configs missing next to the golden set: %v", err)
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			cfg, err := model.LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, cc, err := convertConfig(cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			h, err := newHandle(cc)
			if err != nil {
				t.Fatal(err)
			}
			defer h.free()
			specs := [][]model.TensorSpec{cfg.TextEncoder.Spec(""), cfg.TextEncoder2.Spec(""), cfg.UNet.Spec(), cfg.VAE.DecoderSpec()}
			for ci, sp := range specs {
				var want []string
				for _, s := range sp {
					want = append(want, fmt.Sprintf("%s %s", s.Name, strings.Trim(strings.ReplaceAll(fmt.Sprint(s.Shape), " ", ","), "[]")))
				}
				slices.Sort(want)
				got := h.params(ci)
				if !slices.Equal(got, want) {
					t.Errorf("component %d: the core expects %d parameters, the spec lists %d; first differences: %v",
						ci, len(got), len(want), firstDiffs(got, want))
				}
			}
		})
	}
}

// withTokenizerFiles copies a config-only folder and adds vocab.json/merges.txt from src's
// tokenizers, so that model.LoadConfig accepts it.
func withTokenizerFiles(t *testing.T, cfgDir, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "cfg")
	if err := os.CopyFS(dst, os.DirFS(cfgDir)); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tokenizer", "tokenizer_2"} {
		for _, f := range []string{"vocab.json", "merges.txt"} {
			b, err := os.ReadFile(filepath.Join(src, tok, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, tok, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func firstDiffs(a, b []string) []string {
	in := func(s []string, x string) bool { _, ok := slices.BinarySearch(s, x); return ok }
	var d []string
	for _, x := range a {
		if !in(b, x) && len(d) < 5 {
			d = append(d, "+"+x)
		}
	}
	for _, x := range b {
		if !in(a, x) && len(d) < 10 {
			d = append(d, "-"+x)
		}
	}
	return d
}
