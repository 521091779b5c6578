package kernels

import (
	"strings"
	"testing"

	"github.com/tdxl/tdxl/kernels/internal/isa"
)

// TestKernelPathOptions: Options.ISA / Precision pick the path Info reports; bad values are refused.
func TestKernelPathOptions(t *testing.T) {
	dir := testModelDir(t)
	for _, bad := range []Options{{ISA: "sse9"}, {Precision: "fp16"}} {
		if p, err := Open(dir, bad); err == nil {
			p.Close()
			t.Errorf("Open(%+v) succeeded", bad)
		}
	}
	p, err := Open(dir, Options{Threads: 1, ISA: "ref"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Info().ISA; got != "ref-fp32" {
		t.Errorf("ISA ref: path %q, want ref-fp32", got)
	}
	p.Close()
	if isa.Best() == isa.LevelRef {
		return
	}
	for _, prec := range []string{"fp32", "bf16"} {
		p, err := Open(dir, Options{Threads: 1, Precision: prec})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Info().ISA; !strings.HasSuffix(got, "/"+prec) || strings.HasPrefix(got, "ref") {
			t.Errorf("precision %s: path %q", prec, got)
		}
		p.Close()
	}
	if isa.Supported(isa.LevelAVX2) {
		p, err := Open(dir, Options{Threads: 1, ISA: "avx2", Precision: "fp32"})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Info().ISA; got != "avx2/fp32" {
			t.Errorf("ISA avx2: path %q, want avx2/fp32", got)
		}
		p.Close()
	}
}
