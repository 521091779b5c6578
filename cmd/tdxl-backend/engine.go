package main

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/tdxl/tdxl/backend"
	"github.com/tdxl/tdxl/kernels"
	"github.com/tdxl/tdxl/kernels/synth"
)

// pipelineEngine adapts kernels.Pipeline to backend.Engine.
type pipelineEngine struct{ p *kernels.Pipeline }

func (e pipelineEngine) Generate(ctx context.Context, r backend.EngineRequest) (*backend.EngineResult, error) {
	res, err := e.p.Generate(ctx, kernels.Request{
		Prompts: []string{r.Prompt}, Width: r.Width, Height: r.Height, Steps: r.Steps, Batch: r.Batch,
		Seed: r.Seed, Progress: r.Progress,
	})
	if err != nil {
		return nil, err
	}
	imgs := make([]image.Image, len(res.Images))
	for i, img := range res.Images {
		imgs[i] = img
	}
	return &backend.EngineResult{Images: imgs, StepTimes: res.Timings.UNetSteps}, nil
}

func (e pipelineEngine) Info() backend.EngineInfo {
	i := e.p.Info()
	return backend.EngineInfo{Model: i.Model, ISA: i.ISA, Threads: i.Threads,
		MaxBatch: kernels.MaxBatch, MaxBatchPixels: kernels.MaxPixels}
}

// defaultModelVersion names the cache folder of the embedded default model;
// bump it when the synthesized model changes so old caches are not reused.
const defaultModelVersion = "v1"

// defaultModelSeed is the seed the default tiny model is synthesized with.
const defaultModelSeed = 1

// modelLoader opens --model-dir, or synthesizes the default tiny model once
// into the cache dir and opens that.
type modelLoader struct {
	dir, cacheDir string
	threads       int
	reserve       []kernels.Size // Options.Reserve
	env           func(string) (string, bool)
	log           *slog.Logger

	mu sync.Mutex
	p  *kernels.Pipeline
}

func (l *modelLoader) load(ctx context.Context) (backend.Engine, error) {
	dir := l.dir
	if dir == "" {
		var err error
		if dir, err = l.defaultModel(ctx); err != nil {
			return nil, err
		}
	}
	l.log.Info("loading model", "dir", dir, "threads", l.threads)
	p, err := kernels.Open(dir, kernels.Options{Threads: l.threads, Reserve: l.reserve, Logger: l.log.With("component", "kernels")})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.p = p
	l.mu.Unlock()
	return pipelineEngine{p: p}, nil
}

func (l *modelLoader) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil {
		_ = l.p.Close()
	}
}

// cacheRoot is --cache-dir, else $XDG_CACHE_HOME/tdxl, else ~/.cache/tdxl,
// else (no home) $TMPDIR/tdxl-cache-<uid>.
func (l *modelLoader) cacheRoot() (string, error) {
	if l.cacheDir != "" {
		return l.cacheDir, nil
	}
	if x, ok := l.env("XDG_CACHE_HOME"); ok && x != "" {
		return filepath.Join(x, "tdxl"), nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "tdxl"), nil
	}
	// no $HOME (some containers): a per-user folder under the temp dir
	return filepath.Join(os.TempDir(), fmt.Sprintf("tdxl-cache-%d", os.Getuid())), nil
}

func (l *modelLoader) defaultModel(ctx context.Context) (string, error) {
	root, err := l.cacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "models", "tiny-"+defaultModelVersion)
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err == nil {
		return dir, nil
	}
	l.log.Warn("no --model-dir: synthesizing the tiny random-weight default model (its images are noise)", "dir", dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("creating the model cache: %w", err)
	}
	if err := synth.Write(ctx, dir, synth.Options{Preset: "tiny", Seed: defaultModelSeed}); err != nil {
		// another process may have won the race to write it
		if _, serr := os.Stat(filepath.Join(dir, "model_index.json")); serr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("synthesizing the default model into %s: %w", dir, err)
	}
	return dir, nil
}
