package kernels

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// Once an image of a size has run, the arena holds every page the pipeline needs at that size:
// later images, of 1 step or of 3, ask for blocks but need no memory the arena did not have.
func TestActivationCacheReusedAcrossSteps(t *testing.T) {
	p, err := Open(testModelDir(t), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	run := func(steps int) ActivationStats {
		t.Helper()
		before := p.ActivationStats()
		req := Request{Prompts: []string{"a lighthouse"}, Width: 64, Height: 64, Steps: steps, Batch: 1, Seed: 7}
		if _, err := p.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		after := p.ActivationStats()
		return ActivationStats{Requests: after.Requests - before.Requests, NewBlocks: after.NewBlocks - before.NewBlocks}
	}
	first := run(1)
	if first.Requests == 0 || first.NewBlocks == 0 {
		t.Fatalf("first image: no activation blocks counted: %+v", first)
	}
	one, three := run(1), run(3)
	if three.Requests <= one.Requests || one.Requests != first.Requests {
		t.Errorf("blocks asked for: first %d, 1 step %d, 3 steps %d: want first = 1 step < 3 steps",
			first.Requests, one.Requests, three.Requests)
	}
	if one.NewBlocks != 0 || three.NewBlocks != 0 {
		t.Errorf("after the first image, 1 step needed %d new blocks and 3 steps %d: want none",
			one.NewBlocks, three.NewBlocks)
	}
	if st := p.ActivationStats(); st.PeakBytes == 0 {
		t.Errorf("peak bytes not counted: %+v", st)
	}
	p.Close()
	if st := p.ActivationStats(); st != (ActivationStats{}) {
		t.Errorf("stats after Close = %+v, want zero", st)
	}
}

// One prompt for a batch is encoded once and copied; the images must be those of the same prompt
// given once per batch element (encoded B times).
func TestBatchPromptEncodedOnce(t *testing.T) {
	p := sharedPipeline(t)
	one := smallRequest(5)
	each := smallRequest(5)
	each.Prompts = []string{one.Prompts[0], one.Prompts[0]}
	a, err := p.Generate(context.Background(), one)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Generate(context.Background(), each)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pixels(a), pixels(b)) {
		t.Error("batch with one shared prompt differs from the same prompt given per element")
	}
}

// One persistent pool per pipeline: on the fast path the core's elementwise passes run on the isa
// context's pool, on the reference path the core's own pool is the only one. Either way a pipeline of
// 16 threads adds 15 worker threads to the process, not 30 (slack for the Go runtime's own threads).
func TestOnePoolOnTheFastPath(t *testing.T) {
	tasks := func() int {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Skipf("no /proc/self/task: %v", err) // not Linux; CI runs Linux
		}
		return len(ents)
	}
	req := Request{Prompts: []string{"a fox"}, Width: 64, Height: 64, Steps: 1, Batch: 1, Seed: 3}
	openRun := func() *Pipeline {
		t.Helper()
		p, err := Open(testModelDir(t), Options{Threads: 16})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A first pipeline, closed again, leaves the Go runtime with the threads (Ms) that opening and
	// running one needs; the runtime keeps them, so the second count sees only the pool's threads.
	openRun().Close()
	before := tasks()
	p := openRun()
	defer p.Close()
	if added := tasks() - before; added < 15 || added > 15+4 {
		t.Errorf("a 16-thread pipeline added %d threads, want 15 (+ a few of Go's own)", added)
	}
}

// Options.Reserve sizes the arena at load: the first image at a reserved size needs no fresh
// memory, and the planning run leaves no trace in the results (the images equal those of a
// pipeline opened without it, the cross-attention K/V cache included).
func TestReserveSizesTheArenaAtLoad(t *testing.T) {
	req := Request{Prompts: []string{"a lighthouse at dusk"}, Width: 64, Height: 48, Steps: 2, Batch: 2, Seed: 11}
	p, err := Open(testModelDir(t), Options{Threads: 2, Reserve: []Size{{Width: 64, Height: 48, Batch: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := p.ActivationStats()
	if before.NewBlocks == 0 || before.PeakBytes == 0 {
		t.Fatalf("nothing reserved: %+v", before)
	}
	a, err := p.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	after := p.ActivationStats()
	if after.Requests == before.Requests {
		t.Fatal("the image asked for no blocks")
	}
	if fresh := after.NewBlocks - before.NewBlocks; fresh != 0 {
		t.Errorf("the first image after the reservation needed %d fresh blocks, want 0", fresh)
	}
	b, err := sharedPipeline(t).Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pixels(a), pixels(b)) {
		t.Error("a pipeline with a reserved arena made different images")
	}
	for _, bad := range []Size{{Width: 63, Height: 48}, {Width: 64, Height: 0}, {Width: 64, Height: 48, Batch: -1}} {
		if q, err := Open(testModelDir(t), Options{Threads: 1, Reserve: []Size{bad}}); err == nil {
			q.Close()
			t.Errorf("Reserve %+v accepted", bad)
		}
	}
}
