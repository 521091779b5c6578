package synth

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/safetensors"
)

// chunkElems is the unit of generation: each chunk has its own PRNG stream
// seeded from (seed, tensor name, chunk index), so chunks are generated in
// parallel and the bytes do not depend on the number of threads. It is part
// of the output's definition (a variable only so that tests can shrink it).
var chunkElems int64 = 1 << 20

// splitmix64 is the PRNG (Steele, Lea, Flood 2014): tiny, fast, and good
// enough for random weights.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func chunkSeed(seed int64, name string, chunk int64) splitmix64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(seed))
	binary.LittleEndian.PutUint64(b[8:], uint64(chunk))
	h.Write(b[:])
	h.Write([]byte(name))
	s := splitmix64(h.Sum64())
	s.next()
	return s
}

// initKind returns the constant for biases (0) and norm weights (1), or the
// uniform bound for everything else.
func initKind(s model.TensorSpec) (constant bool, value float32) {
	switch {
	case strings.HasSuffix(s.Name, ".bias"):
		return true, 0
	case len(s.Shape) == 1:
		return true, 1
	}
	fanIn := int64(1)
	for _, d := range s.Shape[1:] {
		fanIn *= d
	}
	return false, float32(1 / math.Sqrt(float64(fanIn)))
}

// genChunk fills out (n elements of dtype dt) for chunk c of tensor s.
func genChunk(out []byte, seed int64, s model.TensorSpec, dt safetensors.DType, c int64, n int) {
	constant, v := initKind(s)
	rng := chunkSeed(seed, s.Name, c)
	value := func() float32 {
		if constant {
			return v
		}
		u := float32(rng.next()>>40) * (1.0 / (1 << 24)) // [0, 1)
		return (2*u - 1) * v
	}
	le := binary.LittleEndian
	switch dt {
	case safetensors.F32:
		for i := 0; i < n; i++ {
			le.PutUint32(out[4*i:], math.Float32bits(value()))
		}
	case safetensors.F16:
		for i := 0; i < n; i++ {
			le.PutUint16(out[2*i:], safetensors.Float32ToHalf(value()))
		}
	case safetensors.BF16:
		for i := 0; i < n; i++ {
			le.PutUint16(out[2*i:], safetensors.Float32ToBF16(value()))
		}
	}
}

// filler streams tensor s: batches of chunks are generated in parallel and
// written in order. The context is checked between batches.
func filler(ctx context.Context, seed int64, s model.TensorSpec, dt safetensors.DType) func(io.Writer) error {
	return func(w io.Writer) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		total := s.NumElements()
		nChunks := (total + chunkElems - 1) / chunkElems
		workers := int64(runtime.GOMAXPROCS(0))
		esz := int(dt.Size())
		if nChunks <= 1 { // small tensor: no goroutines, one exact-size buffer
			buf := make([]byte, total*int64(esz))
			genChunk(buf, seed, s, dt, 0, int(total))
			_, err := w.Write(buf)
			return err
		}
		bufs := make([][]byte, min(workers, nChunks))
		for k := range bufs {
			bufs[k] = make([]byte, chunkElems*int64(esz))
		}
		for c := int64(0); c < nChunks; c += int64(len(bufs)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			batch := min(int64(len(bufs)), nChunks-c)
			var wg sync.WaitGroup
			for k := int64(0); k < batch; k++ {
				n := int(min(chunkElems, total-(c+k)*chunkElems))
				buf := bufs[k][:n*esz]
				wg.Add(1)
				go func(chunk int64) {
					defer wg.Done()
					genChunk(buf, seed, s, dt, chunk, n)
				}(c + k)
			}
			wg.Wait()
			for k := int64(0); k < batch; k++ {
				n := int(min(chunkElems, total-(c+k)*chunkElems))
				if _, err := w.Write(bufs[k][:n*esz]); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
