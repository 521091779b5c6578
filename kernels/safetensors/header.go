// Package safetensors reads and writes the safetensors file format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header, then the raw little-endian data section.
//
// The reader is strict, because model files are untrusted input: the header
// must be a JSON object without duplicate keys, every tensor entry must have
// exactly the keys dtype, shape and data_offsets, a known dtype, a byte size
// equal to shape × dtype size, and the tensors must cover the data section
// exactly (sorted, contiguous, non-overlapping, nothing left over). Files are
// mapped read-only; tensor data aliases the mapping until File.Close.
//
// Pure Go (no cgo).
package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DType is a tensor element type, spelled as in the safetensors spec.
type DType string

// The element types of the safetensors spec.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	BOOL   DType = "BOOL"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

var dtypeSizes = map[DType]int64{
	F64: 8, F32: 4, F16: 2, BF16: 2,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	BOOL: 1, F8E4M3: 1, F8E5M2: 1,
}

// Size returns the size of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int64 { return dtypeSizes[d] }

// Valid reports whether d is a dtype of the safetensors spec.
func (d DType) Valid() bool { return d.Size() > 0 }

// Limits enforced by the parser. They exist so that a hostile header cannot
// make us allocate or compute absurd amounts before it is rejected.
const (
	// MaxHeaderLen is the largest accepted JSON header (the reference
	// implementation's limit is 100 MB as well).
	MaxHeaderLen = 100 << 20
	// MaxRank is the largest accepted number of dimensions.
	MaxRank = 16
	// MaxTensors is the largest accepted number of tensors in one file.
	MaxTensors = 1 << 20
)

// Sentinel errors; every error of this package wraps one of them (test with errors.Is).
var (
	ErrTruncated      = errors.New("file truncated")
	ErrHeaderTooLarge = errors.New("header length out of range")
	ErrBadHeader      = errors.New("malformed header")
	ErrDuplicate      = errors.New("duplicate key")
	ErrDType          = errors.New("unsupported dtype")
	ErrShape          = errors.New("shape does not match byte size")
	ErrOffsets        = errors.New("bad data offsets")
)

// Error describes a problem with one file and, where known, one tensor.
type Error struct {
	Path   string // file path ("" when parsing a bare header)
	Tensor string // tensor name ("" when not about one tensor)
	Err    error  // wraps one of the sentinel errors
}

func (e *Error) Error() string {
	s := "safetensors"
	if e.Path != "" {
		s += ": " + e.Path
	}
	if e.Tensor != "" {
		s += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Info describes one tensor of a file. Begin and End are byte offsets into the
// data section (the bytes after the header).
type Info struct {
	Name  string
	DType DType
	Shape []int64
	Begin int64
	End   int64
}

// NumElements is the product of the shape (1 for a scalar).
func (i Info) NumElements() int64 {
	n := int64(1)
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// Size is the tensor's size in bytes (End - Begin).
func (i Info) Size() int64 { return i.End - i.Begin }

func tensorErr(name string, format string, args ...any) error {
	return &Error{Tensor: name, Err: fmt.Errorf(format, args...)}
}

// ParseHeader parses and validates a JSON header for a data section of dataLen
// bytes. It returns the tensors sorted by data offset (ties by name) and the
// optional __metadata__ map (nil when absent). Errors are *Error values.
func ParseHeader(hdr []byte, dataLen int64) (infos []Info, metadata map[string]string, err error) {
	if dataLen < 0 {
		return nil, nil, &Error{Err: fmt.Errorf("%w: negative data length %d", ErrTruncated, dataLen)}
	}
	if len(hdr) > MaxHeaderLen {
		return nil, nil, &Error{Err: fmt.Errorf("%w: %d bytes", ErrHeaderTooLarge, len(hdr))}
	}
	// As the reference implementation: the header is UTF-8 text starting with '{'
	// (trailing spaces, the writers' padding, are allowed).
	if !utf8.Valid(hdr) {
		return nil, nil, &Error{Err: fmt.Errorf("%w: header is not valid UTF-8", ErrBadHeader)}
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, &Error{Err: fmt.Errorf("%w: header does not start with '{'", ErrBadHeader)}
	}
	entries, err := decodeObject(hdr, true)
	if err != nil {
		return nil, nil, &Error{Err: err}
	}
	if len(entries) > MaxTensors+1 {
		return nil, nil, &Error{Err: fmt.Errorf("%w: %d entries (limit %d)", ErrBadHeader, len(entries), MaxTensors)}
	}
	infos = make([]Info, 0, len(entries))
	for _, e := range entries {
		if e.key == "__metadata__" {
			metadata, err = parseMetadata(e.val)
			if err != nil {
				return nil, nil, &Error{Err: err}
			}
			continue
		}
		info, err := parseInfo(e.key, e.val)
		if err != nil {
			return nil, nil, err
		}
		infos = append(infos, info)
	}
	if err := checkCoverage(infos, dataLen); err != nil {
		return nil, nil, err
	}
	return infos, metadata, nil
}

type kv struct {
	key string
	val json.RawMessage
}

// decodeObject decodes a JSON object into its key/value pairs in order,
// rejecting duplicate keys, non-objects and (if top) trailing garbage other
// than whitespace.
func decodeObject(b []byte, top bool) ([]kv, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadHeader)
	}
	var out []kv
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: object key is not a string", ErrBadHeader)
		}
		if seen[key] {
			return nil, fmt.Errorf("%w %q", ErrDuplicate, key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("%w: value of %q: %v", ErrBadHeader, key, err)
		}
		out = append(out, kv{key, val})
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if top {
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadHeader)
		}
	}
	return out, nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	entries, err := decodeObject(raw, false)
	if err != nil {
		return nil, fmt.Errorf("__metadata__: %w", err)
	}
	md := make(map[string]string, len(entries))
	for _, e := range entries {
		var s string
		if err := json.Unmarshal(e.val, &s); err != nil {
			return nil, fmt.Errorf("%w: __metadata__[%q] is not a string", ErrBadHeader, e.key)
		}
		md[e.key] = s
	}
	return md, nil
}

func parseInfo(name string, raw json.RawMessage) (Info, error) {
	info := Info{Name: name}
	if name == "" {
		return info, tensorErr(name, "%w: empty tensor name", ErrBadHeader)
	}
	entries, err := decodeObject(raw, false)
	if err != nil {
		return info, &Error{Tensor: name, Err: err}
	}
	var haveDType, haveShape, haveOffsets bool
	for _, e := range entries {
		switch e.key {
		case "dtype":
			var s string
			if err := json.Unmarshal(e.val, &s); err != nil {
				return info, tensorErr(name, "%w: dtype is not a string", ErrBadHeader)
			}
			info.DType, haveDType = DType(s), true
		case "shape":
			info.Shape, err = parseInts(e.val, MaxRank)
			if err != nil {
				return info, tensorErr(name, "shape: %w", err)
			}
			haveShape = true
		case "data_offsets":
			offs, err := parseInts(e.val, 2)
			if err != nil || len(offs) != 2 {
				return info, tensorErr(name, "%w: data_offsets must be [begin, end]", ErrBadHeader)
			}
			info.Begin, info.End, haveOffsets = offs[0], offs[1], true
		default:
			return info, tensorErr(name, "%w: unknown key %q", ErrBadHeader, e.key)
		}
	}
	if !haveDType || !haveShape || !haveOffsets {
		return info, tensorErr(name, "%w: needs dtype, shape and data_offsets", ErrBadHeader)
	}
	if !info.DType.Valid() {
		return info, tensorErr(name, "%w %q", ErrDType, info.DType)
	}
	if info.End < info.Begin {
		return info, tensorErr(name, "%w: end %d before begin %d", ErrOffsets, info.End, info.Begin)
	}
	n, ok := int64(1), true
	for _, d := range info.Shape {
		if d != 0 && n > math.MaxInt64/d {
			ok = false
			break
		}
		n *= d
	}
	if !ok || n > math.MaxInt64/info.DType.Size() {
		return info, tensorErr(name, "%w: shape %v overflows", ErrShape, info.Shape)
	}
	if n*info.DType.Size() != info.End-info.Begin {
		return info, tensorErr(name, "%w: %s%v needs %d bytes, data_offsets give %d",
			ErrShape, info.DType, info.Shape, n*info.DType.Size(), info.End-info.Begin)
	}
	return info, nil
}

// parseInts decodes a JSON array of at most max non-negative int64 values
// written as plain decimal integers (no sign, fraction, exponent or quotes).
func parseInts(raw json.RawMessage, max int) ([]int64, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
		return nil, fmt.Errorf("%w: not an array of integers", ErrBadHeader)
	}
	if len(elems) > max {
		return nil, fmt.Errorf("%w: %d entries (limit %d)", ErrBadHeader, len(elems), max)
	}
	out := make([]int64, len(elems))
	for i, e := range elems {
		s := string(bytes.TrimSpace(e))
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return nil, fmt.Errorf("%w: %q is not a non-negative integer", ErrBadHeader, s)
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is out of range", ErrBadHeader, s)
		}
		out[i] = v
	}
	return out, nil
}

// checkCoverage sorts infos by offset and checks they tile [0, dataLen) exactly.
func checkCoverage(infos []Info, dataLen int64) error {
	sort.Slice(infos, func(a, b int) bool {
		if infos[a].Begin != infos[b].Begin {
			return infos[a].Begin < infos[b].Begin
		}
		if infos[a].End != infos[b].End {
			return infos[a].End < infos[b].End
		}
		return infos[a].Name < infos[b].Name
	})
	pos := int64(0)
	for _, in := range infos {
		if in.End > dataLen {
			return tensorErr(in.Name, "%w: [%d, %d) overruns the %d-byte data section", ErrOffsets, in.Begin, in.End, dataLen)
		}
		if in.Begin != pos {
			return tensorErr(in.Name, "%w: begins at %d, expected %d (gap or overlap)", ErrOffsets, in.Begin, pos)
		}
		pos = in.End
	}
	if pos != dataLen {
		return &Error{Err: fmt.Errorf("%w: tensors cover %d of %d data bytes", ErrOffsets, pos, dataLen)}
	}
	return nil
}
