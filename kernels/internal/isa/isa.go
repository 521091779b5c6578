// Package isa holds tdxl's fast CPU kernels (C++ behind the C header isa.h): GEMM for linear layers and
// implicit-GEMM convolutions on packed bf16 or fp32 weights, fused blockwise attention, GroupNorm(+SiLU),
// each in ISA variants (AMX-bf16, AVX512-BF16, AVX-512, AVX2, scalar reference) chosen once at run time
// from CPUID and OS support and capped by TDXL_MAX_ISA.
//
// This file is the package's only cgo stub. The Go functions here are thin, bounds-checked wrappers used
// by the package's tests and benchmark; the engine calls the C API directly.
package isa

/*
#cgo CXXFLAGS: -std=c++17 -O2 -Wall -Wno-uninitialized -Wno-maybe-uninitialized
#cgo LDFLAGS: -lpthread
#include <stdlib.h>
#include "isa.h"
#include "api.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Level is an ISA level; higher is faster where supported.
type Level int

// The ISA levels, lowest first. LevelAMXEmu runs the AMX kernel on an emulation of the tiles (tests only).
const (
	LevelRef        Level = C.TDXL_ISA_REF
	LevelAVX2       Level = C.TDXL_ISA_AVX2
	LevelAVX512     Level = C.TDXL_ISA_AVX512
	LevelAVX512BF16 Level = C.TDXL_ISA_AVX512BF16
	LevelAMX        Level = C.TDXL_ISA_AMX
	LevelAMXEmu     Level = C.TDXL_ISA_AMX_EMU
	LevelAuto       Level = C.TDXL_ISA_AUTO
)

// String is the level's name as TDXL_MAX_ISA spells it ("amx-emu" for the emulation).
func (l Level) String() string { return C.GoString(C.tdxl_isa_level_name(C.int(l))) }

// Best is the level chosen once for this process: the best the CPU and OS support, capped by TDXL_MAX_ISA.
func Best() Level { return Level(C.tdxl_isa_best()) }

// Supported reports whether level can run on this machine.
func Supported(l Level) bool { return C.tdxl_isa_supported(C.int(l)) != 0 }

// Features is the detected feature bit set (TDXL_ISA_FEAT_* of isa.h).
func Features() uint32 { return uint32(C.tdxl_isa_features()) }

// Errors returned by the kernels, matched with errors.Is.
var (
	ErrInvalid     = errors.New("isa: invalid argument")
	ErrNoMemory    = errors.New("isa: out of memory")
	ErrUnsupported = errors.New("isa: ISA level not supported on this CPU")
	ErrMismatch    = errors.New("isa: packed weight does not match the operation")
)

func status(op string, rc C.int) error {
	switch rc {
	case C.TDXL_ISA_OK:
		return nil
	case C.TDXL_ISA_EINVAL:
		return fmt.Errorf("%s: %w", op, ErrInvalid)
	case C.TDXL_ISA_ENOMEM:
		return fmt.Errorf("%s: %w", op, ErrNoMemory)
	case C.TDXL_ISA_EUNSUPPORTED:
		return fmt.Errorf("%s: %w", op, ErrUnsupported)
	case C.TDXL_ISA_EMISMATCH:
		return fmt.Errorf("%s: %w", op, ErrMismatch)
	default:
		return fmt.Errorf("%s: status %d", op, int(rc))
	}
}

// DType of weights handed to Pack*.
type DType int

// Weight source dtypes.
const (
	F32  DType = C.TDXL_ISA_F32
	F16  DType = C.TDXL_ISA_F16
	BF16 DType = C.TDXL_ISA_BF16
)

// Activation fused into the GEMM epilogue.
type Act int

// Activations.
const (
	ActNone Act = C.TDXL_ISA_ACT_NONE
	ActGELU Act = C.TDXL_ISA_ACT_GELU
	ActSiLU Act = C.TDXL_ISA_ACT_SILU
)

// Ctx is an execution context: a persistent thread pool at one ISA level. Not safe for concurrent calls.
type Ctx struct {
	p *C.tdxl_isa_ctx
}

// NewCtx makes a context with threads threads (0 = all CPUs) at level (LevelAuto = Best()).
func NewCtx(threads int, level Level) (*Ctx, error) {
	var p *C.tdxl_isa_ctx
	if err := status("creating context", C.tdxl_isa_ctx_new(C.int(threads), C.int(level), &p)); err != nil {
		return nil, err
	}
	return &Ctx{p: p}, nil
}

// Close frees the context; calling it twice is fine.
func (c *Ctx) Close() {
	if c.p != nil {
		C.tdxl_isa_ctx_free(c.p)
		c.p = nil
	}
}

// Level is the context's ISA level.
func (c *Ctx) Level() Level { return Level(C.tdxl_isa_ctx_level(c.p)) }

// Threads is the context's thread count.
func (c *Ctx) Threads() int { return int(C.tdxl_isa_ctx_threads(c.p)) }

// Weight is a packed weight. Conv weights have KH, KW > 0.
type Weight struct {
	p         *C.tdxl_isa_weight
	N, K, Cin int
	KH, KW    int
	conv      bool
}

// Free releases the packed weight; calling it twice is fine.
func (w *Weight) Free() {
	if w.p != nil {
		C.tdxl_isa_weight_free(w.p)
		w.p = nil
	}
}

// Level is the ISA level whose kernel will run this weight.
func (w *Weight) Level() Level { return Level(C.tdxl_isa_weight_level(w.p)) }

// Bytes is the resident size of the packed panels.
func (w *Weight) Bytes() int { return int(C.tdxl_isa_weight_bytes(w.p)) }

func elemSize(dt DType) int {
	if dt == F32 {
		return 4
	}
	return 2
}

// PackLinear packs W [n][k] given as raw little-endian elements of dtype. fp32 keeps fp32 panels resident
// (for the fp32 paths); otherwise weights are resident as bf16.
func (c *Ctx) PackLinear(src []byte, dt DType, n, k int, fp32 bool) (*Weight, error) {
	if n <= 0 || k <= 0 || len(src) < n*k*elemSize(dt) {
		return nil, fmt.Errorf("packing linear weight %dx%d: %w", n, k, ErrInvalid)
	}
	var p *C.tdxl_isa_weight
	rc := C.tdxl_isa_weight_pack_linear(c.p, unsafe.Pointer(&src[0]), C.int(dt), C.int64_t(n), C.int64_t(k),
		resident(fp32), &p)
	if err := status("packing linear weight", rc); err != nil {
		return nil, err
	}
	return &Weight{p: p, N: n, K: k, Cin: k, KH: 1, KW: 1}, nil
}

// PackGEGLU packs a GEGLU projection W [f2][k] (hidden rows first, then gates) and its bias [f2] (nil for
// none); Linear with it writes y [m][f2/2] = hidden * gelu(gate) (pass nil bias/residual and ActNone).
func (c *Ctx) PackGEGLU(src []byte, dt DType, f2, k int, bias []float32, fp32 bool) (*Weight, error) {
	if f2 <= 0 || f2%2 != 0 || k <= 0 || len(src) < f2*k*elemSize(dt) || (bias != nil && len(bias) < f2) {
		return nil, fmt.Errorf("packing GEGLU weight %dx%d: %w", f2, k, ErrInvalid)
	}
	var p *C.tdxl_isa_weight
	rc := C.tdxl_isa_weight_pack_geglu(c.p, unsafe.Pointer(&src[0]), C.int(dt), C.int64_t(f2), C.int64_t(k),
		fptr(bias), resident(fp32), &p)
	if err := status("packing GEGLU weight", rc); err != nil {
		return nil, err
	}
	return &Weight{p: p, N: f2 / 2, K: k, Cin: k, KH: 1, KW: 1}, nil
}

// PackConv packs a conv weight [cout][cin][kh][kw] (checkpoint layout).
func (c *Ctx) PackConv(src []byte, dt DType, cout, cin, kh, kw int, fp32 bool) (*Weight, error) {
	if cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0 || len(src) < cout*cin*kh*kw*elemSize(dt) {
		return nil, fmt.Errorf("packing conv weight: %w", ErrInvalid)
	}
	var p *C.tdxl_isa_weight
	rc := C.tdxl_isa_weight_pack_conv(c.p, unsafe.Pointer(&src[0]), C.int(dt), C.int64_t(cout), C.int64_t(cin),
		C.int(kh), C.int(kw), resident(fp32), &p)
	if err := status("packing conv weight", rc); err != nil {
		return nil, err
	}
	return &Weight{p: p, N: cout, K: cin * kh * kw, Cin: cin, KH: kh, KW: kw, conv: true}, nil
}

func resident(fp32 bool) C.int {
	if fp32 {
		return C.TDXL_ISA_RESIDENT_F32
	}
	return C.TDXL_ISA_RESIDENT_BF16
}

// need reports whether a strided [rows][cols] view with row stride ld fits in have elements.
func need(have, rows, cols, ld int) bool { return ld >= cols && rows > 0 && have >= (rows-1)*ld+cols }

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// Linear computes y = act(x . Wᵀ + bias + residual); bias and residual may be nil.
func (c *Ctx) Linear(w *Weight, m int, x []float32, ldx int, y []float32, ldy int, bias, residual []float32,
	ldr int, act Act) error {
	if w == nil || w.p == nil || !need(len(x), m, w.K, ldx) || !need(len(y), m, w.N, ldy) ||
		(bias != nil && len(bias) < w.N) || (residual != nil && !need(len(residual), m, w.N, ldr)) {
		return fmt.Errorf("linear: %w", ErrInvalid)
	}
	rc := C.tdxl_isa_linear(c.p, w.p, C.int64_t(m), fptr(x), C.int64_t(ldx), fptr(y), C.int64_t(ldy),
		fptr(bias), fptr(residual), C.int64_t(ldr), C.int(act))
	return status("linear", rc)
}

// ConvOut is the output size of a conv along one axis.
func ConvOut(in, k, stride, pad int) int { return (in+2*pad-k)/stride + 1 }

// Conv2D runs an NHWC convolution: x [b][h][wd][cin], y [b][ho][wo][cout]; bias, residual may be nil.
func (c *Ctx) Conv2D(w *Weight, b, h, wd int, x []float32, stride, pad int, y, bias, residual []float32,
	act Act) error {
	if w == nil || w.p == nil || !w.conv || b <= 0 || h <= 0 || wd <= 0 || stride <= 0 || pad < 0 {
		return fmt.Errorf("conv2d: %w", ErrInvalid)
	}
	ho, wo := ConvOut(h, w.KH, stride, pad), ConvOut(wd, w.KW, stride, pad)
	if ho <= 0 || wo <= 0 || len(x) < b*h*wd*w.Cin || len(y) < b*ho*wo*w.N || (bias != nil && len(bias) < w.N) ||
		(residual != nil && len(residual) < b*ho*wo*w.N) {
		return fmt.Errorf("conv2d: %w", ErrInvalid)
	}
	rc := C.tdxl_isa_conv2d(c.p, w.p, C.int64_t(b), C.int64_t(h), C.int64_t(wd), fptr(x), C.int(stride),
		C.int(pad), fptr(y), fptr(bias), fptr(residual), C.int(act))
	return status("conv2d", rc)
}

// AttentionArgs describes one fused attention call (see tdxl_isa_attention in isa.h).
type AttentionArgs struct {
	B, Tq, Tk, Heads, D int
	Q, K, V, O          []float32
	LdQ, LdK, LdV, LdO  int
	Scale               float32
	Causal              bool
}

// Attention runs fused blockwise attention with online softmax.
func (c *Ctx) Attention(a AttentionArgs) error {
	hd := a.Heads * a.D
	if a.B <= 0 || a.Heads <= 0 || a.D <= 0 || !need(len(a.Q), a.B*a.Tq, hd, a.LdQ) ||
		!need(len(a.K), a.B*a.Tk, hd, a.LdK) || !need(len(a.V), a.B*a.Tk, hd, a.LdV) ||
		!need(len(a.O), a.B*a.Tq, hd, a.LdO) {
		return fmt.Errorf("attention: %w", ErrInvalid)
	}
	causal := C.int(0)
	if a.Causal {
		causal = 1
	}
	rc := C.tdxl_isa_attention(c.p, C.int64_t(a.B), C.int64_t(a.Tq), C.int64_t(a.Tk), C.int64_t(a.Heads),
		C.int64_t(a.D), fptr(a.Q), C.int64_t(a.LdQ), fptr(a.K), C.int64_t(a.LdK), fptr(a.V), C.int64_t(a.LdV),
		fptr(a.O), C.int64_t(a.LdO), C.float(a.Scale), causal)
	return status("attention", rc)
}

// GroupNorm normalises NHWC x [b][hw][c] over groups of channels; y may be x. silu fuses SiLU.
func (c *Ctx) GroupNorm(b, hw, ch, groups int, eps float32, x, gamma, beta, y []float32, silu bool) error {
	if b <= 0 || hw <= 0 || ch <= 0 || len(x) < b*hw*ch || len(y) < b*hw*ch || len(gamma) < ch || len(beta) < ch {
		return fmt.Errorf("group norm: %w", ErrInvalid)
	}
	s := C.int(0)
	if silu {
		s = 1
	}
	rc := C.tdxl_isa_group_norm(c.p, C.int64_t(b), C.int64_t(hw), C.int64_t(ch), C.int64_t(groups), C.float(eps),
		fptr(x), fptr(gamma), fptr(beta), fptr(y), s)
	return status("group norm", rc)
}

// FMAPeak measures the fp32 FMA peak in GFLOP/s on all the context's threads for about seconds.
func (c *Ctx) FMAPeak(seconds float64) (float64, error) {
	wall, _, err := c.Peak(false, seconds)
	return wall, err
}

// Peak measures the fp32 FMA peak (dot false) or the peak of the instruction the context level's bf16
// GEMM uses (dot true; ErrUnsupported on the AMX levels). wall: GFLOP/s of all threads by wall time;
// perCPU: GFLOP per CPU-second of one thread (see tdxl_isa_peak in isa.h).
func (c *Ctx) Peak(dot bool, seconds float64) (wall, perCPU float64, err error) {
	kind := C.int(C.TDXL_ISA_PEAK_FMA)
	if dot {
		kind = C.TDXL_ISA_PEAK_DOT
	}
	var g, pc C.double
	if err := status("measuring peak", C.tdxl_isa_peak(c.p, kind, C.double(seconds), &g, &pc)); err != nil {
		return 0, 0, err
	}
	return float64(g), float64(pc), nil
}

// LayerNorm normalises each row of x [m][ch] (y may be x).
func (c *Ctx) LayerNorm(m, ch int, eps float32, x, gamma, beta, y []float32) error {
	if m <= 0 || ch <= 0 || len(x) < m*ch || len(y) < m*ch || len(gamma) < ch || len(beta) < ch {
		return fmt.Errorf("layer norm: %w", ErrInvalid)
	}
	rc := C.tdxl_isa_layer_norm(c.p, C.int64_t(m), C.int64_t(ch), C.float(eps), fptr(x), fptr(gamma), fptr(beta),
		fptr(y))
	return status("layer norm", rc)
}

// API is the address of the C table of isa.h's functions (api.h), through which package kernels' C++
// calls these kernels (a cgo package cannot link another package's C symbols by name).
func API() unsafe.Pointer { return unsafe.Pointer(C.tdxl_isa_get_api()) }
