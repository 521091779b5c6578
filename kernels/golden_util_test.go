package kernels

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tdxl/tdxl/kernels/safetensors"
)

// Golden-set plumbing: manifest types, tensor loading, tolerance classes and figure collection.

type tolClass struct {
	Exact                bool     `json:"exact"`
	MaxRel               *float64 `json:"max_rel"`
	MaxAbs               *float64 `json:"max_abs"`
	RelL2                *float64 `json:"rel_l2"`
	MaxFractionDiffering *float64 `json:"max_fraction_differing"`
	MaxAbsOfRef          *float64 `json:"-"` // max-abs ≤ this × max|want| (bf16 path)
}

type goldenCase struct {
	ID        string                     `json:"id"`
	Kind      string                     `json:"kind"`
	Component string                     `json:"component"`
	File      string                     `json:"file"`
	Optional  bool                       `json:"optional"`
	Inputs    map[string]json.RawMessage `json:"inputs"`
	Outputs   map[string]string          `json:"outputs"`
	ImageHW   []int                      `json:"image_hw"`
}

type goldenManifest struct {
	Set        string              `json:"set"`
	ModelDir   string              `json:"model_dir"`
	Tolerances map[string]tolClass `json:"tolerance_classes"`
	Cases      []goldenCase        `json:"cases"`
}

// goldenDir is $TDXL_GOLDEN_DIR or ../shared/golden/tiny-sdxl relative to the repository root.
// Missing: the test fails when CI is set, else skips.
func goldenDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TDXL_GOLDEN_DIR")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("finding repo root: %v", err)
		}
		dir = filepath.Join(root, "..", "shared", "golden", "tiny-sdxl")
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("golden set missing at %s (set TDXL_GOLDEN_DIR): %v", dir, err)
		}
		t.Skipf("golden set missing at %s: %v", dir, err)
	}
	return dir
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		d = parent
	}
}

func loadManifest(t *testing.T, dir string) *goldenManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m goldenManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("manifest.json has no cases")
	}
	return &m
}

// vectors caches opened golden files.
type vectors struct {
	root  string
	mu    sync.Mutex
	files map[string]*safetensors.File
}

func (v *vectors) file(t *testing.T, name string) *safetensors.File {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if f, ok := v.files[name]; ok {
		return f
	}
	f, err := safetensors.Open(filepath.Join(v.root, name))
	if err != nil {
		t.Fatalf("opening golden file: %v", err)
	}
	v.files[name] = f
	return f
}

func (v *vectors) close() {
	for _, f := range v.files {
		f.Close()
	}
}

func (v *vectors) tensor(t *testing.T, file, name string) safetensors.Tensor {
	t.Helper()
	tt, ok := v.file(t, file).Tensor(name)
	if !ok {
		t.Fatalf("%s: no tensor %q", file, name)
	}
	return tt
}

func (v *vectors) f32(t *testing.T, file, name string) ([]float32, []int64) {
	t.Helper()
	tt := v.tensor(t, file, name)
	d, err := tt.Float32()
	if err != nil {
		t.Fatalf("%s:%s: %v", file, name, err)
	}
	return d, tt.Shape
}

func (v *vectors) i64(t *testing.T, file, name string) []int64 {
	t.Helper()
	tt := v.tensor(t, file, name)
	d, err := tt.Int64()
	if err != nil {
		t.Fatalf("%s:%s: %v", file, name, err)
	}
	return d
}

// figures collects the worst max-abs / rel-L2 per tolerance class.
type figures struct {
	mu    sync.Mutex
	worst map[string][3]float64 // max-abs, rel-L2, fraction differing
	count map[string]int
}

func (f *figures) add(class string, maxAbs, relL2, frac float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.worst[class]
	w[0], w[1], w[2] = math.Max(w[0], maxAbs), math.Max(w[1], relL2), math.Max(w[2], frac)
	f.worst[class] = w
	f.count[class]++
}

func (f *figures) log(t *testing.T) {
	classes := make([]string, 0, len(f.worst))
	for c := range f.worst {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		w := f.worst[c]
		t.Logf("class %-11s %3d tensors: worst max-abs %.3g, worst rel-L2 %.3g, worst fraction differing %.3g",
			c, f.count[c], w[0], w[1], w[2])
	}
}

// check compares got with want under a tolerance class and records the figures.
func (g *goldenRun) check(t *testing.T, name, class string, got, want []float64) {
	t.Helper()
	tols := g.m.Tolerances
	if g.tol != nil {
		tols = g.tol
	}
	tc, ok := tols[class]
	if !ok {
		t.Errorf("%s: unknown tolerance class %q", name, class)
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d values, golden has %d", name, len(got), len(want))
		return
	}
	var maxAbs, num, den, maxRel, refMax float64
	differ := 0
	for i := range got {
		refMax = math.Max(refMax, math.Abs(want[i]))
		d := math.Abs(got[i] - want[i])
		if math.IsNaN(got[i]) || math.IsInf(got[i], 0) {
			d = math.Inf(1)
		}
		if d != 0 {
			differ++
		}
		maxAbs = math.Max(maxAbs, d)
		num += d * d
		den += want[i] * want[i]
		if want[i] != 0 {
			maxRel = math.Max(maxRel, d/math.Abs(want[i]))
		} else if d != 0 {
			maxRel = math.Inf(1)
		}
	}
	relL2 := 0.0
	if den > 0 {
		relL2 = math.Sqrt(num / den)
	} else if num > 0 {
		relL2 = math.Inf(1)
	}
	frac := float64(differ) / float64(max(1, len(got)))
	g.figs.add(class, maxAbs, relL2, frac)
	var fails []string
	if tc.Exact && differ > 0 {
		fails = append(fails, fmt.Sprintf("%d values differ (exact), max-abs %.3g", differ, maxAbs))
	}
	if tc.MaxRel != nil && maxRel > *tc.MaxRel {
		fails = append(fails, fmt.Sprintf("max-rel %.3g > %.3g", maxRel, *tc.MaxRel))
	}
	if tc.MaxAbs != nil && maxAbs > *tc.MaxAbs {
		fails = append(fails, fmt.Sprintf("max-abs %.3g > %.3g", maxAbs, *tc.MaxAbs))
	}
	if tc.MaxAbsOfRef != nil && !(maxAbs <= *tc.MaxAbsOfRef*refMax) {
		fails = append(fails, fmt.Sprintf("max-abs %.3g > %.3g x max|ref| %.3g", maxAbs, *tc.MaxAbsOfRef, refMax))
	}
	if tc.RelL2 != nil && relL2 > *tc.RelL2 {
		fails = append(fails, fmt.Sprintf("rel-L2 %.3g > %.3g", relL2, *tc.RelL2))
	}
	if tc.MaxFractionDiffering != nil && frac > *tc.MaxFractionDiffering {
		fails = append(fails, fmt.Sprintf("fraction differing %.3g > %.3g", frac, *tc.MaxFractionDiffering))
	}
	if len(fails) > 0 {
		t.Errorf("%s (class %s): %s", name, class, strings.Join(fails, "; "))
	}
}

func f64s[T float32 | int64 | uint8 | float64](s []T) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// want loads a golden tensor of any dtype as float64.
func (g *goldenRun) want(t *testing.T, file, name string) []float64 {
	t.Helper()
	tt := g.v.tensor(t, file, name)
	switch tt.DType {
	case safetensors.I64:
		return f64s(g.v.i64(t, file, name))
	case safetensors.U8:
		d, err := tt.Uint8()
		if err != nil {
			t.Fatal(err)
		}
		return f64s(d)
	default:
		d, _ := g.v.f32(t, file, name)
		return f64s(d)
	}
}

func rawString(t *testing.T, m map[string]json.RawMessage, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m[key], &s); err != nil {
		t.Fatalf("input %q: %v", key, err)
	}
	return s
}

func rawNumber(t *testing.T, m map[string]json.RawMessage, key string) float64 {
	t.Helper()
	var f float64
	if err := json.Unmarshal(m[key], &f); err != nil {
		t.Fatalf("input %q: %v", key, err)
	}
	return f
}

func rawStrings(t *testing.T, m map[string]json.RawMessage, key string) []string {
	t.Helper()
	var s []string
	if err := json.Unmarshal(m[key], &s); err != nil {
		t.Fatalf("input %q: %v", key, err)
	}
	return s
}
