package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tdxl/tdxl/backend"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// BenchmarkService measures the service on the tiny model: requests/s and
// p50/p95 latency for TDXL_BENCH_CLIENTS concurrent clients (default 4)
// sending TDXL_BENCH_REQUESTS requests in all (default 24) of
// TDXL_BENCH_SIZE (default 64x64) with TDXL_BENCH_STEPS steps (default 4),
// and the HTTP layer's overhead: the service's time per request divided by
// the bare engine call's, both measured in the same run (goal <= 1.05).
func BenchmarkService(b *testing.B) {
	clients := envInt("TDXL_BENCH_CLIENTS", 4)
	total := envInt("TDXL_BENCH_REQUESTS", 24)
	size := envStr("TDXL_BENCH_SIZE", small)
	steps := envInt("TDXL_BENCH_STEPS", 4)
	sizes, err := backend.ParseSizes([]string{size})
	if err != nil {
		b.Fatal(err)
	}
	wh := sizes[size]
	eng := pipelineEngine{p: tiny}
	base := startService(b, backend.Config{Sizes: []string{size}, OutputDir: b.TempDir(), Queue: clients})
	body := fmt.Sprintf(`{"prompt":"%s","size":"%s","step":%d}`, panda, size, steps)
	// warm up both paths once
	if _, err := eng.Generate(context.Background(), backend.EngineRequest{Prompt: panda, Width: wh[0], Height: wh[1], Steps: steps, Batch: 1}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r := benchRounds(b, eng, base, body, wh, steps, clients, total)
		sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
		bare := r.bare / time.Duration(total)
		perReq := r.wall / time.Duration(total)
		ratio := float64(perReq) / float64(bare)
		util := r.engine.Seconds() / r.wall.Seconds()
		inService := r.engine / time.Duration(total)
		cpuRatio := float64(r.httpCPU) / float64(r.bareCPU)
		b.ReportMetric(float64(total)/r.wall.Seconds(), "req/s")
		b.ReportMetric(quantile(r.lat, 0.5).Seconds(), "p50_s")
		b.ReportMetric(quantile(r.lat, 0.95).Seconds(), "p95_s")
		b.ReportMetric(bare.Seconds(), "engine_s/op")
		b.ReportMetric(ratio, "overhead_ratio")
		b.ReportMetric(cpuRatio, "cpu_overhead_ratio")
		fmt.Printf("backend bench: %s, %d steps, %d clients, %d requests: %.2f req/s, p50 %.3fs, p95 %.3fs; "+
			"bare engine %.4fs/call, service %.4fs/request: HTTP overhead ratio %.3f (goal <= 1.05); "+
			"inside the service the engine took %.4fs/call (%.3f × bare) and was busy %.1f%% of the wall time; "+
			"CPU time per request (clients included) %.3f × bare\n",
			size, steps, clients, total, float64(total)/r.wall.Seconds(), quantile(r.lat, 0.5).Seconds(),
			quantile(r.lat, 0.95).Seconds(), bare.Seconds(), perReq.Seconds(), ratio,
			inService.Seconds(), float64(inService)/float64(bare), 100*util, cpuRatio)
	}
}

type benchResult struct {
	bare, wall, engine time.Duration // sums over rounds
	bareCPU, httpCPU   time.Duration // process CPU time (user+system) of each phase
	lat                []time.Duration
}

// cpuTime is this process's user+system CPU time so far: unlike wall time
// it is barely disturbed by other processes on the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRounds alternates bare engine calls and HTTP requests in rounds, so
// that both see the same machine load (other processes share this host).
func benchRounds(b *testing.B, eng pipelineEngine, base, body string, wh [2]int, steps, clients, total int) benchResult {
	const rounds = 4
	var r benchResult
	var mu sync.Mutex
	seed := 0
	for round := 0; round < rounds; round++ {
		m := total / rounds
		if round == rounds-1 {
			m = total - m*(rounds-1)
		}
		t0, c0 := time.Now(), cpuTime()
		for i := 0; i < m; i++ {
			if _, err := eng.Generate(context.Background(), backend.EngineRequest{Prompt: panda, Width: wh[0], Height: wh[1],
				Steps: steps, Batch: 1, Seed: int64(seed + i)}); err != nil {
				b.Fatal(err)
			}
		}
		r.bare += time.Since(t0)
		r.bareCPU += cpuTime() - c0
		next := make(chan int, m)
		for i := 0; i < m; i++ {
			next <- seed + i
		}
		close(next)
		seed += m
		var wg sync.WaitGroup
		t0, c0 = time.Now(), cpuTime()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					s := time.Now()
					resp, err := http.Post(base+"/api/text2image", "application/json",
						strings.NewReader(strings.Replace(body, "}", fmt.Sprintf(`,"seed":%d}`, i), 1)))
					if err != nil {
						b.Error(err)
						return
					}
					var out backend.Response
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Errorf("status %d, %v", resp.StatusCode, err)
						return
					}
					mu.Lock()
					r.lat = append(r.lat, time.Since(s))
					r.engine += time.Duration(out.GenerationTimeSeconds * float64(time.Second))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		r.wall += time.Since(t0)
		r.httpCPU += cpuTime() - c0
	}
	return r
}
