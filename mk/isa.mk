# mk/isa.mk — kernels/internal/isa (engineer C): the fast CPU kernels.
#
#   make test-isa    the isa package's tests under TDXL_MAX_ISA=ref and =avx2 (uncapped they run in test-go)
#   make bench-isa   FMA peak + GEMM/conv/attention microbenchmark over SDXL's shapes (a report, ~2 min)

ISA_PKG := ./kernels/internal/isa

.PHONY: test-isa bench-isa
test-isa:
	TDXL_MAX_ISA=ref CGO_ENABLED=1 $(GO) test -race -count=1 $(ISA_PKG)
	TDXL_MAX_ISA=avx2 CGO_ENABLED=1 $(GO) test -race -count=1 $(ISA_PKG)

bench-isa:
	CGO_ENABLED=1 $(GO) test -run='^$$' -bench='^BenchmarkISAReport$$' -benchtime=1x -timeout 10m $(ISA_PKG)

TEST_EXTRA  += test-isa
BENCH_EXTRA += bench-isa
