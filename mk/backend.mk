# backend area (engineer D): the text-to-image service (backend/) and cmd/tdxl-backend.
#
#   make test-backend    the service's tests: backend (pure Go, test-double engine) and the
#                        end-to-end tests of cmd/tdxl-backend on the real core with the tiny model
#   make bench-backend   requests/s, p50/p95 latency for concurrent clients on the tiny model and
#                        the HTTP layer's overhead vs the bare engine call (part of `make bench`)
FUZZ_TARGETS += ./backend:FuzzDecodeRequest
BENCH_EXTRA  += bench-backend

BACKEND_BENCH_SIZE     ?= 512x512
BACKEND_BENCH_STEPS    ?= 4
BACKEND_BENCH_CLIENTS  ?= 4
BACKEND_BENCH_REQUESTS ?= 8

.PHONY: test-backend bench-backend
test-backend:
	CGO_ENABLED=0 $(GO) test -count=1 ./backend
	CGO_ENABLED=1 $(GO) test -count=1 -timeout 20m ./cmd/tdxl-backend

bench-backend:
	TDXL_BENCH_SIZE=$(BACKEND_BENCH_SIZE) TDXL_BENCH_STEPS=$(BACKEND_BENCH_STEPS) \
	TDXL_BENCH_CLIENTS=$(BACKEND_BENCH_CLIENTS) TDXL_BENCH_REQUESTS=$(BACKEND_BENCH_REQUESTS) \
	CGO_ENABLED=1 $(GO) test -run='^$$' -bench='^BenchmarkService$$' -benchtime=1x -timeout 60m ./cmd/tdxl-backend
