package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteTensor is one tensor to write. Exactly one of Data and Fill is set:
// Data holds the little-endian bytes; Fill streams them (it must write
// exactly Shape × DType.Size() bytes to w, and may return an error such as
// ctx.Err() to abort the whole file).
type WriteTensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
	Fill  func(w io.Writer) error
}

// ByteSize is the tensor's size in bytes as given by its dtype and shape.
func (t WriteTensor) ByteSize() int64 {
	return Info{DType: t.DType, Shape: t.Shape}.NumElements() * t.DType.Size()
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// EncodeHeader builds the header (JSON padded with spaces to a multiple of 8
// bytes, without the 8-byte length) for tensors laid out in the given order.
// It validates names, dtypes and shapes.
func EncodeHeader(tensors []WriteTensor, metadata map[string]string) ([]byte, error) {
	m := make(map[string]any, len(tensors)+1)
	if metadata != nil {
		m["__metadata__"] = metadata
	}
	off := int64(0)
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return nil, &Error{Tensor: t.Name, Err: fmt.Errorf("%w: invalid tensor name", ErrBadHeader)}
		}
		if _, dup := m[t.Name]; dup {
			return nil, &Error{Tensor: t.Name, Err: ErrDuplicate}
		}
		if !t.DType.Valid() {
			return nil, &Error{Tensor: t.Name, Err: fmt.Errorf("%w %q", ErrDType, t.DType)}
		}
		if len(t.Shape) > MaxRank {
			return nil, &Error{Tensor: t.Name, Err: fmt.Errorf("%w: rank %d", ErrShape, len(t.Shape))}
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, &Error{Tensor: t.Name, Err: fmt.Errorf("%w: negative dimension in %v", ErrShape, t.Shape)}
			}
		}
		if (t.Data == nil) == (t.Fill == nil) && t.ByteSize() != 0 {
			return nil, &Error{Tensor: t.Name, Err: errors.New("exactly one of Data and Fill must be set")}
		}
		n := t.ByteSize()
		if t.Data != nil && int64(len(t.Data)) != n {
			return nil, &Error{Tensor: t.Name, Err: fmt.Errorf("%w: %d data bytes for %s%v", ErrShape, len(t.Data), t.DType, t.Shape)}
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		m[t.Name] = headerEntry{t.DType, shape, [2]int64{off, off + n}}
		off += n
	}
	hdr, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("safetensors: encoding header: %w", err)
	}
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	return hdr, nil
}

// WriteFile writes a safetensors file atomically: into a temporary file in
// the same directory, fsynced, then renamed to path. Tensor data is streamed
// one tensor at a time (Fill), so files larger than memory can be written.
// On any error nothing is left at path (an existing file there is untouched).
func WriteFile(path string, tensors []WriteTensor, metadata map[string]string) (err error) {
	hdr, err := EncodeHeader(tensors, metadata)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Path = path
		}
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: creating %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	bw.Write(lenBuf[:])
	bw.Write(hdr)
	for _, t := range tensors {
		if err := writeTensor(bw, t); err != nil {
			return &Error{Path: path, Tensor: t.Name, Err: err}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: closing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: renaming into %s: %w", path, err)
	}
	return nil
}

type countingWriter struct {
	w     io.Writer
	n     int64
	limit int64
}

var errTooMuch = errors.New("Fill wrote more bytes than the tensor holds")

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.limit {
		return 0, errTooMuch
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeTensor(w io.Writer, t WriteTensor) error {
	if t.Data != nil || t.Fill == nil {
		_, err := w.Write(t.Data)
		return err
	}
	cw := &countingWriter{w: w, limit: t.ByteSize()}
	if err := t.Fill(cw); err != nil {
		return err
	}
	if cw.n != cw.limit {
		return fmt.Errorf("%w: Fill wrote %d of %d bytes", ErrShape, cw.n, cw.limit)
	}
	return nil
}
