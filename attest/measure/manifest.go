// Package measure computes the runtime measurements the gateway records in
// its event log and extends into RTMR3: the model manifest digest, binary
// digests and the configuration digest, and provides the RTMR extender
// (Linux sysfs, or a fake) and the event Log that ties them together.
package measure

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ManifestHeader is the first line of the canonical model manifest.
const ManifestHeader = "tdxl/model-manifest/v1"

// ManifestEntry is one measured model file.
type ManifestEntry struct {
	// Path is relative to the model directory, with '/' separators.
	Path string
	// Size is the file size in bytes.
	Size int64
	// SHA256 is the SHA-256 of the file's contents.
	SHA256 [32]byte
}

// Manifest lists every measured file of a model directory, sorted by Path.
type Manifest struct {
	Entries []ManifestEntry
}

// Canonical returns the canonical text form the model digest is taken over:
//
//	tdxl/model-manifest/v1\n
//	<path>\t<size in decimal>\t<sha256 lowercase hex>\n   (one line per file, sorted by path bytes)
//
// Paths are relative, '/'-separated, valid UTF-8 and contain no tab or
// newline (ModelManifest refuses such names), so the form is unambiguous and
// can be reproduced with standard tools.
func (m *Manifest) Canonical() []byte {
	var b strings.Builder
	b.WriteString(ManifestHeader + "\n")
	for _, e := range m.Entries {
		b.WriteString(e.Path)
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(e.Size, 10))
		b.WriteByte('\t')
		b.WriteString(hex.EncodeToString(e.SHA256[:]))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Digest is SHA-256(Canonical()): the model measurement (attest.EventModel).
func (m *Manifest) Digest() [32]byte { return sha256.Sum256(m.Canonical()) }

// TotalSize is the sum of the entries' sizes.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}

// ManifestOptions tune ModelManifest. The zero value is usable.
type ManifestOptions struct {
	// Logger receives start, progress and end records; nil discards them.
	Logger *slog.Logger
	// ProgressInterval is the time between progress records. 0 = 5s.
	ProgressInterval time.Duration
	// Workers is how many files are hashed at once. 0 = min(4, GOMAXPROCS).
	// Every byte is still read exactly once.
	Workers int
	// IncludeHidden measures entries whose name starts with '.' too. By
	// default they are skipped (e.g. .cache/ metadata that download tools
	// rewrite, .git/): the backend never loads them.
	IncludeHidden bool
}

// ErrBadModelDir reports a model directory that cannot be measured
// canonically (no files, unsupported names, symlinked directories, special files).
var ErrBadModelDir = errors.New("measure: unsupported model directory")

// ModelManifest measures dir: every regular file below it (symlinks to
// regular files are followed, as in Hugging Face snapshot folders) is read
// once, streamed through SHA-256, and listed with its relative path and
// size. Progress goes to opts.Logger. ctx cancels between reads.
func ModelManifest(ctx context.Context, dir string, opts ManifestOptions) (*Manifest, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := listFiles(dir, opts.IncludeHidden)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Entries: entries}
	total := m.TotalSize()
	start := time.Now()
	log.Info("measuring model", "dir", dir, "files", len(entries), "bytes", total)

	var done atomic.Int64
	stop := make(chan struct{})
	var progress sync.WaitGroup
	progress.Add(1)
	go func() {
		defer progress.Done()
		interval := opts.ProgressInterval
		if interval <= 0 {
			interval = 5 * time.Second
		}
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				d := done.Load()
				log.Info("measuring model: progress", "bytes_done", d, "bytes_total", total,
					"percent", percent(d, total), "mb_per_s", rate(d, time.Since(start)))
			}
		}
	}()
	err = hashAll(ctx, dir, m.Entries, workers(opts.Workers), &done)
	close(stop)
	progress.Wait()
	if err != nil {
		return nil, err
	}
	dg := m.Digest()
	el := time.Since(start)
	log.Info("measured model", "dir", dir, "files", len(entries), "bytes", total,
		"seconds", el.Seconds(), "mb_per_s", rate(total, el), "sha256", hex.EncodeToString(dg[:]))
	return m, nil
}

func percent(done, total int64) float64 {
	if total == 0 {
		return 100
	}
	return float64(int64(float64(done)/float64(total)*1000)) / 10
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(int64(float64(n)/d.Seconds()/1e6*10)) / 10
}

func workers(n int) int {
	if n > 0 {
		return n
	}
	return min(4, runtime.GOMAXPROCS(0))
}

// listFiles walks dir and returns the files to measure, sorted by path, with
// sizes (hashes still zero).
func listFiles(dir string, hidden bool) ([]ManifestEntry, error) {
	var out []ManifestEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking model directory: %w", err)
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !hidden && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !utf8.ValidString(rel) || strings.ContainsAny(rel, "\t\n\r") {
			return fmt.Errorf("%w: file name %q", ErrBadModelDir, rel)
		}
		fi, err := os.Stat(p) // follows symlinks
		if err != nil {
			return fmt.Errorf("measuring %s: %w", rel, err)
		}
		switch {
		case fi.IsDir():
			return fmt.Errorf("%w: %s is a symlink to a directory", ErrBadModelDir, rel)
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file", ErrBadModelDir, rel)
		}
		out = append(out, ManifestEntry{Path: rel, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no files in %s", ErrBadModelDir, dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// hashAll fills in each entry's SHA256 with n workers.
func hashAll(ctx context.Context, dir string, entries []ManifestEntry, n int, done *atomic.Int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				e := &entries[i]
				sum, size, err := hashFile(ctx, filepath.Join(dir, filepath.FromSlash(e.Path)), done)
				if err == nil && size != e.Size {
					err = fmt.Errorf("%s changed size while measuring (%d → %d bytes)", e.Path, e.Size, size)
				}
				if err != nil {
					cancel(fmt.Errorf("measuring %s: %w", e.Path, err))
					continue
				}
				e.SHA256 = sum
			}
		}()
	}
	for i := range entries {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// hashBufSize is the read size: large enough that syscalls are negligible.
const hashBufSize = 1 << 20

// hashFile streams path through SHA-256, adding progress to done.
func hashFile(ctx context.Context, path string, done *atomic.Int64) ([32]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, hashBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return [32]byte{}, n, err
		}
		k, err := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			if done != nil {
				done.Add(int64(k))
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return [32]byte{}, n, err
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, n, nil
}

// FileDigest returns the SHA-256 of a file's contents (the binary
// measurement, attest.EventBackendBinary / EventGatewayBinary), streamed.
func FileDigest(ctx context.Context, path string) ([32]byte, error) {
	sum, _, err := hashFile(ctx, path, nil)
	if err != nil {
		return [32]byte{}, fmt.Errorf("measuring %s: %w", path, err)
	}
	return sum, nil
}
