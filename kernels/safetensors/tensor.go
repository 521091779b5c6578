package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
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
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
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
// (overflow to ±Inf, NaN kept quiet).
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is correct (up to Inf)
	}
	return sign | uint16(r)
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
