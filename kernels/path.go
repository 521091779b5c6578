package kernels

import (
	"fmt"
	"os"

	"github.com/tdxl/tdxl/kernels/internal/isa"
)

// isaLevels are the names Options.ISA and TDXL_MAX_ISA accept, lowest first.
var isaLevels = map[string]isa.Level{
	"ref": isa.LevelRef, "avx2": isa.LevelAVX2, "avx512": isa.LevelAVX512,
	"avx512bf16": isa.LevelAVX512BF16, "amx": isa.LevelAMX,
}

// Weight residency codes of isa.h (TDXL_ISA_RESIDENT_*).
const (
	residentBF16 = 0
	residentF32  = 1
)

// kernelPath resolves Options.ISA / Options.Precision (and TDXL_PRECISION) to an isa level and a
// weight residency. isa.Best() is already capped by TDXL_MAX_ISA; an explicit Options.ISA is capped
// by it too, so a cap set in the environment always holds.
func kernelPath(opts Options) (isa.Level, int, error) {
	level := isa.Best()
	if opts.ISA != "" {
		l, ok := isaLevels[opts.ISA]
		if !ok {
			return 0, 0, fmt.Errorf("unknown ISA %q (want amx, avx512bf16, avx512, avx2 or ref)", opts.ISA)
		}
		if l < level {
			level = l
		}
	}
	prec := opts.Precision
	if prec == "" {
		prec = os.Getenv("TDXL_PRECISION")
	}
	switch prec {
	case "", "bf16":
		return level, residentBF16, nil
	case "fp32":
		return level, residentF32, nil
	}
	return 0, 0, fmt.Errorf("unknown precision %q (want bf16 or fp32)", prec)
}
