package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// rawFile builds a safetensors file from a literal header and data section.
func rawFile(t *testing.T, hdr string, data []byte) string {
	t.Helper()
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(hdr)))
	buf.WriteString(hdr)
	buf.Write(data)
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	i64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(i64, 49406)
	binary.LittleEndian.PutUint64(i64[8:], uint64(0xffffffffffffffff)) // -1
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00}                  // 1, -2, smallest subnormal
	bf16 := []byte{0x80, 0x3f, 0x40, 0x40}                             // 1, 3
	f64 := make([]byte, 8)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.1))
	ts := []WriteTensor{
		{Name: "b.weight", DType: F32, Shape: []int64{2, 2}, Data: f32bytes(1, 2, 3, 4)},
		{Name: "a.ids", DType: I64, Shape: []int64{2}, Fill: func(w io.Writer) error { _, err := w.Write(i64); return err }},
		{Name: "h", DType: F16, Shape: []int64{3}, Data: f16},
		{Name: "bf", DType: BF16, Shape: []int64{2}, Data: bf16},
		{Name: "d", DType: F64, Shape: []int64{}, Data: f64},
		{Name: "img", DType: U8, Shape: []int64{1, 3}, Data: []byte{0, 128, 255}},
		{Name: "empty", DType: F32, Shape: []int64{0, 5}},
	}
	if err := WriteFile(p, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Names(), []string{"a.ids", "b.weight", "bf", "d", "empty", "h", "img"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	if f.Metadata()["format"] != "pt" || f.Path() != p {
		t.Fatalf("metadata %v path %q", f.Metadata(), f.Path())
	}
	check := func(name string, want []float32) {
		t.Helper()
		tt, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("tensor %s missing", name)
		}
		got, err := tt.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
	check("b.weight", []float32{1, 2, 3, 4})
	check("h", []float32{1, -2, float32(math.Ldexp(1, -24))})
	check("bf", []float32{1, 3})
	check("d", []float32{0.1})
	check("empty", []float32{})
	ids, _ := f.Tensor("a.ids")
	if v, err := ids.Int64(); err != nil || !reflect.DeepEqual(v, []int64{49406, -1}) {
		t.Fatalf("Int64 = %v, %v", v, err)
	}
	if _, err := ids.Float32(); !errors.Is(err, ErrDType) {
		t.Fatalf("Float32 of I64: err = %v, want ErrDType", err)
	}
	img, _ := f.Tensor("img")
	if v, err := img.Uint8(); err != nil || !bytes.Equal(v, []byte{0, 128, 255}) {
		t.Fatalf("Uint8 = %v, %v", v, err)
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Fatal("Tensor(nope) found")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := f.Tensor("h"); ok {
		t.Fatal("Tensor after Close returned data")
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir has %d entries, want 1", len(ents))
	}
}

func TestWriteFileAtomicOnError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	boom := errors.New("boom")
	cases := map[string][]WriteTensor{
		"fill error": {{Name: "a", DType: F32, Shape: []int64{1}, Fill: func(io.Writer) error { return boom }}},
		"short fill": {{Name: "a", DType: F32, Shape: []int64{2}, Fill: func(w io.Writer) error { _, err := w.Write(f32bytes(1)); return err }}},
		"long fill":  {{Name: "a", DType: F32, Shape: []int64{1}, Fill: func(w io.Writer) error { _, err := w.Write(f32bytes(1, 2)); return err }}},
		"bad dtype":  {{Name: "a", DType: "F17", Shape: []int64{1}, Data: []byte{1}}},
		"bad size":   {{Name: "a", DType: F32, Shape: []int64{2}, Data: f32bytes(1)}},
		"duplicate":  {{Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{1}}},
	}
	for name, ts := range cases {
		err := WriteFile(p, ts, nil)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if name == "fill error" && !errors.Is(err, boom) {
			t.Errorf("fill error: %v does not wrap the Fill error", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: left %d files behind", name, len(ents))
		}
	}
}

func TestHalfConversionExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got := HalfToFloat32(uint16(h))
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(int(sign))
		case e == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: %v, want NaN", h, got)
			}
			continue
		case e == 0:
			want = sign * math.Ldexp(float64(m), -24)
		default:
			want = sign * math.Ldexp(1+float64(m)/1024, e-15)
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("%#04x: %v, want %v", h, got, want)
		}
		// Round trip back.
		if back := Float32ToHalf(got); back != uint16(h) {
			t.Fatalf("Float32ToHalf(%v) = %#04x, want %#04x", got, back, h)
		}
	}
	// Rounding: halfway between 1 and 1+2^-10 goes to even (1); just above goes up.
	if h := Float32ToHalf(1 + 1.0/2048); h != 0x3c00 {
		t.Errorf("tie: %#04x", h)
	}
	if h := Float32ToHalf(float32(1 + 1.0/2048 + 1.0/65536)); h != 0x3c01 {
		t.Errorf("above tie: %#04x", h)
	}
	if h := Float32ToHalf(70000); h != 0x7c00 {
		t.Errorf("overflow: %#04x", h)
	}
	if h := Float32ToBF16(float32(math.Float32frombits(0x3f808000))); h != 0x3f80 {
		t.Errorf("bf16 tie to even: %#04x", h)
	}
	if h := Float32ToBF16(float32(math.Float32frombits(0x3f818000))); h != 0x3f82 {
		t.Errorf("bf16 tie to even (odd): %#04x", h)
	}
}

// TestOpenBadFiles feeds each class of broken file and checks the error class,
// and that the message names the file and (where it applies) the tensor.
func TestOpenBadFiles(t *testing.T) {
	good := `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	cases := []struct {
		name, hdr string
		data      []byte
		want      error
		tensor    string
	}{
		{"truncated data", good, f32bytes(1), ErrOffsets, "w"},
		{"offsets overrun", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, f32bytes(1, 2), ErrOffsets, "w"},
		{"gap", `{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32bytes(1, 2), ErrOffsets, "w"},
		{"overlap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32bytes(1, 2), ErrOffsets, "b"},
		{"trailing data", good, f32bytes(1, 2, 3), ErrOffsets, ""},
		{"end before begin", `{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, f32bytes(1, 2), ErrOffsets, "w"},
		{"bad json", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`, f32bytes(1, 2), ErrBadHeader, ""},
		{"not an object", `[1,2]`, nil, ErrBadHeader, ""},
		{"leading space", ` {}`, nil, ErrBadHeader, ""},
		{"invalid utf-8", "{\"w\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", []byte{1}, ErrBadHeader, ""},
		{"trailing garbage", good + `x`, f32bytes(1, 2), ErrBadHeader, ""},
		{"wrong dtype", `{"w":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrDType, "w"},
		{"lowercase dtype", `{"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrDType, "w"},
		{"shape mismatch", `{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrShape, "w"},
		{"shape overflow", `{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrShape, "w"},
		{"negative dim", `{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrBadHeader, "w"},
		{"float dim", `{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrBadHeader, "w"},
		{"string dim", `{"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrBadHeader, "w"},
		{"missing key", `{"w":{"dtype":"F32","shape":[2]}}`, f32bytes(1, 2), ErrBadHeader, "w"},
		{"unknown key", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, f32bytes(1, 2), ErrBadHeader, "w"},
		{"three offsets", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, f32bytes(1, 2), ErrBadHeader, "w"},
		{"duplicate tensor", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrDuplicate, ""},
		{"duplicate inner key", `{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrDuplicate, "w"},
		{"metadata not strings", `{"__metadata__":{"a":1},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrBadHeader, ""},
		{"empty name", `{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32bytes(1, 2), ErrBadHeader, ""},
		{"rank too large", `{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}`, []byte{1}, ErrBadHeader, "w"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := rawFile(t, c.hdr, c.data)
			f, err := Open(p)
			if err == nil {
				f.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != p || e.Tensor != c.tensor {
				t.Fatalf("err = %#v, want *Error with path %s tensor %q", err, p, c.tensor)
			}
			if !strings.Contains(err.Error(), p) || (c.tensor != "" && !strings.Contains(err.Error(), `"`+c.tensor+`"`)) {
				t.Fatalf("message %q does not name file and tensor", err)
			}
		})
	}
}

func TestOpenTruncatedAndHugeHeader(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	lenOnly := func(n uint64) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short length", []byte{1, 2, 3}, ErrTruncated},
		{"header past end", append(lenOnly(100), `{}`...), ErrTruncated},
		{"absurd length", lenOnly(1 << 62), ErrHeaderTooLarge},
		{"max uint64", lenOnly(math.MaxUint64), ErrHeaderTooLarge},
	}
	for _, c := range cases {
		_, err := Open(write(c.name, c.b))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("directory opened")
	}
	// Minimal valid file: empty header object, padded, no data.
	f, err := Open(write("empty-ok", append(lenOnly(8), `{}      `...)))
	if err != nil {
		t.Fatalf("empty valid file: %v", err)
	}
	if len(f.Names()) != 0 {
		t.Fatal("names in empty file")
	}
	f.Close()
}

func TestGoldenFilesOpen(t *testing.T) {
	dir := os.Getenv("TDXL_GOLDEN_DIR")
	if dir == "" {
		dir = "../../../shared/golden/tiny-sdxl"
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "*.safetensors"))
	more, _ := filepath.Glob(filepath.Join(dir, "model", "*", "*.safetensors"))
	paths = append(paths, more...)
	if len(paths) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("golden dir %s has no safetensors files", dir)
		}
		t.Skipf("golden dir %s not present", dir)
	}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, n := range f.Names() {
			tt, _ := f.Tensor(n)
			switch tt.DType {
			case F32, F16, F64:
				if _, err := tt.Float32(); err != nil {
					t.Errorf("%s %s: %v", p, n, err)
				}
			}
		}
		f.Close()
	}
}

// float32ToHalfRef is a plain, branchy reference (exponent and mantissa
// arithmetic with explicit round-to-nearest-even).
func float32ToHalfRef(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
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
		r++
	}
	return sign | uint16(r)
}

func TestFloat32ToHalfAgainstReference(t *testing.T) {
	check := func(bits uint32) {
		f := math.Float32frombits(bits)
		got, want := Float32ToHalf(f), float32ToHalfRef(f)
		if got != want {
			t.Fatalf("Float32ToHalf(%g = %#08x) = %#04x, want %#04x", f, bits, got, want)
		}
	}
	// Every exponent with edge mantissas (ties, just above/below), both signs.
	for e := uint32(0); e < 256; e++ {
		for _, m := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fe000, 0x7fefff, 0x7ff000, 0x7fffff, 0x400000} {
			check(e<<23 | m)
			check(1<<31 | e<<23 | m)
		}
	}
	// The whole half-relevant range sampled densely (every 97th pattern).
	for b := uint32(100 << 23); b < 144<<23; b += 97 {
		check(b)
	}
}
