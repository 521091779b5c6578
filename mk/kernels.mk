# Kernels core (engineer A): package kernels (C++ reference core behind cgo) and kernels/bench.
#
# TestGolden reads the golden set from TDXL_GOLDEN_DIR (default: ../shared/golden/tiny-sdxl next to
# the repository); with CI set, a missing set fails the test instead of skipping it.

TDXL_GOLDEN_DIR ?= $(abspath $(CURDIR)/../shared/golden/tiny-sdxl)
export TDXL_GOLDEN_DIR

KERNELS_PKGS := ./kernels ./kernels/bench/...
# Flags of the kernels benchmark (see `go run ./kernels/bench/cmd/kbench --help`): 512x512, 4 steps,
# batch 1 twice, each followed by batch 4 (per-image times side by side), bf16-resident weights on the
# best fast path, on the synthesized full-size sdxl-turbo (cached under $XDG_CACHE_HOME/tdxl or
# ~/.cache/tdxl), plus the GEMM/conv/attention report over SDXL shapes. Then 1024x1024 (peak RSS).
KBENCH_ARGS ?= --height 512 --width 512 --step 4 --batch 1 --repeat 2 --compare-batch 4 --bf16
KBENCH_1024_ARGS ?= --height 1024 --width 1024 --step 4 --batch 1 --bf16 --gemm off

BENCH_EXTRA += bench-kernels bench-kernels-1024
# TestGolden runs the reference path and the machine's best fast path (fp32 and bf16 weights) in
# test-go; this runs the whole kernels package again with the path capped at avx512 (fp32 FMA with
# bf16 weights expanded on the fly, what a CPU without AVX512-BF16 runs) and at avx2 (TDXL_MAX_ISA),
# about 20 s.
TEST_EXTRA += test-kernels-avx2

.PHONY: test-kernels test-kernels-avx2 bench-kernels bench-kernels-1024
test-kernels-avx2:
	TDXL_MAX_ISA=avx512 CGO_ENABLED=1 $(GO) test -count=1 ./kernels
	TDXL_MAX_ISA=avx2 CGO_ENABLED=1 $(GO) test -count=1 ./kernels

# Quick check of the kernels packages alone (golden + unit tests, -race on the Go side).
test-kernels:
	CGO_ENABLED=1 $(GO) vet $(KERNELS_PKGS)
	CGO_ENABLED=1 $(GO) test -race -count=1 $(KERNELS_PKGS)

# End-to-end benchmark of the core (a report, not a test): load time, per-stage times,
# total, peak RSS, threads and kernel path, then one JSON line of headline figures.
bench-kernels:
	CGO_ENABLED=1 $(GO) run ./kernels/bench/cmd/kbench $(KBENCH_ARGS)

bench-kernels-1024:
	CGO_ENABLED=1 $(GO) run ./kernels/bench/cmd/kbench $(KBENCH_1024_ARGS)
