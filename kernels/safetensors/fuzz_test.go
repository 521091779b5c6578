package safetensors

import (
	"errors"
	"io"
	"reflect"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	seeds := []struct {
		hdr     string
		dataLen int64
	}{
		{`{}`, 0},
		{`{"__metadata__":{"format":"pt"}}`, 0},
		{`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8},
		{`{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"I64","shape":[],"data_offsets":[12,20]}}   `, 20},
		{`{"e":{"dtype":"BF16","shape":[0,4],"data_offsets":[0,0]},"f":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1},
		{`{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 8},
		{`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8},
		{`{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, 8},
		{`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`, 8},
		{`[]`, 0},
		{`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}`, 8},
		{`{"w":{"dtype":"F32","shape":[1e3],"data_offsets":[0,8]}}`, 8},
	}
	for _, s := range seeds {
		f.Add([]byte(s.hdr), s.dataLen)
	}
	f.Fuzz(func(t *testing.T, hdr []byte, dataLen int64) {
		infos, md, err := ParseHeader(hdr, dataLen)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		// Invariants of an accepted header.
		pos := int64(0)
		for _, in := range infos {
			if in.Begin != pos || in.Size() != in.NumElements()*in.DType.Size() || !in.DType.Valid() {
				t.Fatalf("accepted inconsistent tensor %+v at %d", in, pos)
			}
			pos = in.End
		}
		if pos != dataLen {
			t.Fatalf("accepted header covering %d of %d bytes", pos, dataLen)
		}
		// Round trip through our encoder gives the same tensors.
		ws := make([]WriteTensor, len(infos))
		for i, in := range infos {
			ws[i] = WriteTensor{Name: in.Name, DType: in.DType, Shape: in.Shape, Fill: func(io.Writer) error { return nil }}
		}
		hdr2, err := EncodeHeader(ws, md)
		if err != nil {
			t.Fatalf("re-encoding accepted header: %v", err)
		}
		infos2, md2, err := ParseHeader(hdr2, dataLen)
		if err != nil {
			t.Fatalf("re-parsing: %v\n%s", err, hdr2)
		}
		if !reflect.DeepEqual(infos, infos2) || len(md) != len(md2) {
			t.Fatalf("round trip changed header:\n%+v\n%+v", infos, infos2)
		}
	})
}
