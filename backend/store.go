package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Store keeps generated images under one folder, one sub-folder per request
// id. A request's images are written into a hidden temporary folder that is
// renamed into place only when all of them are written, so a failed request
// leaves nothing behind and a reader never sees a half-written file. The
// store is plain files: it survives restarts and is swept by age and size.
type Store struct {
	dir    string
	log    *slog.Logger
	maxAge time.Duration // <= 0: no age limit
	maxB   int64         // <= 0: no size limit
	now    func() time.Time
	mu     sync.Mutex // serialises sweeps and guards the fields below

	swept  bool      // a sweep has run: bytes and oldest are known
	bytes  int64     // total bytes stored (as of the last sweep, plus commits)
	oldest time.Time // oldest request folder's time after the last sweep
}

const (
	tmpPrefix = ".tmp-"
	metaFile  = "meta.json"
	gridFile  = "image_grid.png"
)

// imageName matches the files a request may serve: <run>_<index>.png and
// image_grid.png.
var imageName = regexp.MustCompile(`^(?:[0-9]{1,4}_[0-9]{1,4}|image_grid)\.png$`)

// OpenStore creates dir if needed and removes temporary folders left by a
// crash.
func OpenStore(dir string, maxAge time.Duration, maxBytes int64, now func() time.Time, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading output dir: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	if now == nil {
		now = time.Now
	}
	return &Store{dir: dir, log: log, maxAge: maxAge, maxB: maxBytes, now: now}, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// storedMeta is meta.json: what is needed to answer GET /api/text2image/<id>
// after a restart (URLs are rebuilt from the caller's host).
type storedMeta struct {
	Response Response `json:"response"`
	Files    []string `json:"files"` // output[i]'s file name
	Grid     bool     `json:"grid"`
}

// pending is a request's temporary folder.
type pending struct {
	s       *Store
	id      string
	tmp     string
	written int64
}

func (s *Store) begin(id string) (*pending, error) {
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix+id+"-")
	if err != nil {
		return nil, fmt.Errorf("creating temporary image folder: %w", err)
	}
	return &pending{s: s, id: id, tmp: tmp}, nil
}

func (p *pending) write(name string, data []byte) error {
	if err := os.WriteFile(filepath.Join(p.tmp, name), data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	p.written += int64(len(data))
	return nil
}

func (p *pending) commit(m storedMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", metaFile, err)
	}
	if err := p.write(metaFile, b); err != nil {
		return err
	}
	if err := os.Rename(p.tmp, filepath.Join(p.s.dir, p.id)); err != nil {
		return fmt.Errorf("moving images into place: %w", err)
	}
	p.s.mu.Lock()
	p.s.bytes += p.written
	if p.s.oldest.IsZero() {
		p.s.oldest = p.s.now()
	}
	p.s.mu.Unlock()
	return nil
}

func (p *pending) abort() { _ = os.RemoveAll(p.tmp) }

// validID reports whether id is a request id in canonical UUID form.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// Open opens a stored image for reading. Anything but an existing regular
// file named like an image, in an existing request folder, is fs.ErrNotExist.
func (s *Store) Open(id, name string) (*os.File, fs.FileInfo, error) {
	if !validID(id) || !imageName.MatchString(name) {
		return nil, nil, fs.ErrNotExist
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("opening output dir: %w", err)
	}
	defer root.Close()
	f, err := root.Open(id + "/" + name)
	if err != nil {
		return nil, nil, fs.ErrNotExist
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fs.ErrNotExist
	}
	return f, fi, nil
}

func (s *Store) readMeta(id string) (*storedMeta, error) {
	if !validID(id) {
		return nil, fs.ErrNotExist
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id, metaFile))
	if err != nil {
		return nil, fs.ErrNotExist
	}
	var m storedMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s of %s: %w", metaFile, id, err)
	}
	return &m, nil
}

type storedDir struct {
	name  string
	mtime time.Time
	bytes int64
}

// needsSweep reports whether a limit may be exceeded, from what the store
// knows since its last sweep (so that finishing a job costs no directory scan).
func (s *Store) needsSweep() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.swept || (s.maxB > 0 && s.bytes > s.maxB) ||
		(s.maxAge > 0 && !s.oldest.IsZero() && s.now().Sub(s.oldest) > s.maxAge)
}

// Sweep deletes request folders older than the age limit, then the oldest
// ones until the store is within the byte limit. It returns how many folders
// it deleted.
func (s *Store) Sweep() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dirs, err := s.list()
	if err != nil {
		return 0, err
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].mtime.Before(dirs[j].mtime) })
	var total int64
	for _, d := range dirs {
		total += d.bytes
	}
	now := s.now()
	removed := 0
	for i := range dirs {
		d := &dirs[i]
		old := s.maxAge > 0 && now.Sub(d.mtime) > s.maxAge
		big := s.maxB > 0 && total > s.maxB
		if !old && !big {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, d.name)); err != nil {
			return removed, fmt.Errorf("removing %s: %w", d.name, err)
		}
		total -= d.bytes
		removed++
		s.log.Debug("retention removed images", "id", d.name, "bytes", d.bytes, "too_old", old)
		d.bytes = -1 // removed
	}
	s.swept, s.bytes, s.oldest = true, total, time.Time{}
	for _, d := range dirs {
		if d.bytes >= 0 {
			s.oldest = d.mtime
			break
		}
	}
	return removed, nil
}

func (s *Store) list() ([]storedDir, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("reading output dir: %w", err)
	}
	var out []storedDir
	for _, e := range ents {
		if !e.IsDir() || !validID(e.Name()) {
			continue // not ours: leave it alone
		}
		d := storedDir{name: e.Name()}
		files, err := os.ReadDir(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			fi, err := f.Info()
			if err != nil {
				continue
			}
			d.bytes += fi.Size()
			if fi.ModTime().After(d.mtime) {
				d.mtime = fi.ModTime()
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// encodePNG encodes img deterministically (same pixels ⇒ same bytes).
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// makeGrid lays imgs out row by row on a near-square grid.
func makeGrid(imgs []image.Image) (image.Image, error) {
	if len(imgs) == 0 {
		return nil, errors.New("making grid: no images")
	}
	w, h := imgs[0].Bounds().Dx(), imgs[0].Bounds().Dy()
	cols := int(math.Ceil(math.Sqrt(float64(len(imgs)))))
	rows := (len(imgs) + cols - 1) / cols
	grid := image.NewRGBA(image.Rect(0, 0, cols*w, rows*h))
	for i, img := range imgs {
		x, y := (i%cols)*w, (i/cols)*h
		draw.Draw(grid, image.Rect(x, y, x+w, y+h), img, img.Bounds().Min, draw.Src)
	}
	return grid, nil
}
