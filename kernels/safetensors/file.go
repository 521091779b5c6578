package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
)

// File is an open safetensors file. Its tensor data is mapped read-only and
// stays valid until Close. A File is safe for concurrent use.
type File struct {
	path     string
	data     []byte // the data section (aliases mapped)
	mapped   []byte // the whole mapping, released by Close
	infos    map[string]Info
	names    []string
	metadata map[string]string

	closeOnce sync.Once
	closeErr  error
}

// Open maps the file at path read-only and validates its header (see
// ParseHeader). Errors are *Error values naming the file and, where it
// applies, the tensor.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: opening %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{Path: path, Err: fmt.Errorf("%w: not a regular file", ErrBadHeader)}
	}
	size := st.Size()
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, &Error{Path: path, Err: fmt.Errorf("%w: %d bytes, no 8-byte header length", ErrTruncated, size)}
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderLen {
		return nil, &Error{Path: path, Err: fmt.Errorf("%w: %d bytes (limit %d)", ErrHeaderTooLarge, n, MaxHeaderLen)}
	}
	if int64(n) > size-8 {
		return nil, &Error{Path: path, Err: fmt.Errorf("%w: header length %d but only %d bytes follow", ErrTruncated, n, size-8)}
	}
	mapped, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: mapping %s: %w", path, err)
	}
	hdrEnd := 8 + int64(n)
	infos, md, err := ParseHeader(mapped[8:hdrEnd], size-hdrEnd)
	if err != nil {
		_ = unmapFile(mapped)
		var e *Error
		if errors.As(err, &e) {
			e.Path = path
		}
		return nil, err
	}
	file := &File{
		path:     path,
		data:     mapped[hdrEnd:],
		mapped:   mapped,
		infos:    make(map[string]Info, len(infos)),
		names:    make([]string, 0, len(infos)),
		metadata: md,
	}
	for _, in := range infos {
		file.infos[in.Name] = in
		file.names = append(file.names, in.Name)
	}
	sort.Strings(file.names)
	return file, nil
}

// Path returns the path the file was opened from.
func (f *File) Path() string { return f.path }

// Names returns the tensor names, sorted. The caller must not modify the slice.
func (f *File) Names() []string { return f.names }

// Metadata returns the __metadata__ map (nil when the file has none).
func (f *File) Metadata() map[string]string { return f.metadata }

// Info returns the description of the named tensor.
func (f *File) Info(name string) (Info, bool) {
	in, ok := f.infos[name]
	return in, ok
}

// Tensor returns the named tensor; its Data aliases the mapping (valid until Close).
func (f *File) Tensor(name string) (Tensor, bool) {
	in, ok := f.infos[name]
	if !ok || f.data == nil {
		return Tensor{}, false
	}
	return Tensor{Info: in, Data: f.data[in.Begin:in.End:in.End]}, true
}

// Close releases the mapping. It is idempotent; tensors obtained earlier must
// not be used afterwards.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		if f.mapped != nil {
			f.closeErr = unmapFile(f.mapped)
		}
		f.mapped, f.data = nil, nil
	})
	return f.closeErr
}
