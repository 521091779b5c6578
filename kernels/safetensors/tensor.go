package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Tensor is one tensor of a File. Data aliases the read-only mapping: never
// write to it, and do not use it after File.Close.
type Tensor struct {
	Info
	Data []byte
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func (t Tensor) check(want ...DType) error {
	for _, d := range want {
		if t.DType == d {
			if int64(len(t.Data)) != t.NumElements()*d.Size() {
				return &Error{Tensor: t.Name, Err: fmt.Errorf("%w: %d data bytes for %s%v", ErrShape, len(t.Data), t.DType, t.Shape)}
			}
			return nil
		}
	}
	return &Error{Tensor: t.Name, Err: fmt.Errorf("%w: %s, want one of %v", ErrDType, t.DType, want)}
}

// Float32 returns a new slice with the values converted from F32, F16, BF16
// or F64 (F64 is rounded to nearest float32).
func (t Tensor) Float32() ([]float32, error) {
	if err := t.check(F32, F16, BF16, F64); err != nil {
		return nil, err
	}
	n := t.NumElements()
	out := make([]float32, n)
	switch t.DType {
	case F32:
		if littleEndian && n > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), n*4), t.Data)
			break
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case F16:
		tab := halfTable()
		for i := range out {
			out[i] = tab[binary.LittleEndian.Uint16(t.Data[2*i:])]
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
	}
	return out, nil
}

// Float64 returns a new slice with the values converted from F64, F32, F16 or BF16.
func (t Tensor) Float64() ([]float64, error) {
	if t.DType == F64 {
		if err := t.check(F64); err != nil {
			return nil, err
		}
		out := make([]float64, t.NumElements())
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
		}
		return out, nil
	}
	f, err := t.Float32()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out, nil
}

// Int64 returns a new slice with the values of an I64 tensor.
func (t Tensor) Int64() ([]int64, error) {
	if err := t.check(I64); err != nil {
		return nil, err
	}
	out := make([]int64, t.NumElements())
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

// Uint8 returns a copy of the values of a U8 tensor.
func (t Tensor) Uint8() ([]uint8, error) {
	if err := t.check(U8); err != nil {
		return nil, err
	}
	return append([]uint8(nil), t.Data...), nil
}

var (
	halfOnce sync.Once
	halfTab  *[1 << 16]float32
)

// halfTable is HalfToFloat32 for every half value (256 KB, built on first use).
func halfTable() *[1 << 16]float32 {
	halfOnce.Do(func() {
		t := new([1 << 16]float32)
		for h := range t {
			t[h] = HalfToFloat32(uint16(h))
		}
		halfTab = t
	})
	return halfTab
}

// HalfToFloat32 converts an IEEE 754 binary16 value (exactly; subnormals,
// infinities and NaN payloads included).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf / NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // ±0
		return math.Float32frombits(sign)
	}
	// subnormal: mant * 2^-24, normalise
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// Float32ToHalf converts to IEEE binary16 with round-to-nearest-even
// (overflow to ±Inf; NaN becomes the quiet NaN 0x7e00 with the sign kept).
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &^= 0x80000000
	switch {
	case b >= 143<<23: // |f| >= 65536 (rounds to Inf), Inf or NaN
		if b > 0x7f800000 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case b < 113<<23: // half subnormal or zero: let the FPU round at 2^-24
		// Adding 0.5 (exponent 126) aligns the half's subnormal bits at the
		// bottom of the mantissa; float32 addition rounds to nearest even.
		const magic = 126 << 23
		v := math.Float32frombits(b) + math.Float32frombits(magic)
		return sign | uint16(math.Float32bits(v)-magic)
	}
	// Normal: rebias the exponent, round to nearest even on bit 13 (a carry
	// into the exponent is correct, up to Inf).
	odd := (b >> 13) & 1
	b = b - (127-15)<<23 + 0xfff + odd
	return sign | uint16(b>>13)
}

// Float32ToBF16 converts to bfloat16 with round-to-nearest-even (NaN kept quiet).
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
