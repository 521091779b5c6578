# tdxl — top-level Makefile.
#
#   make build   binaries into bin/ (tdxl-backend needs cgo; the rest is pure Go)
#   make test    everything CI checks: vet, unit + golden tests (-race), CGO_ENABLED=0 builds, brief fuzzing (FUZZTIME executions per target)
#   make run     start the backend on :5000 with the embedded default (tiny, random-weight) model
#   make bench   long benchmarks and reports (never part of `make test`)
#
# Each area of the project adds its own targets and list entries in mk/<area>.mk,
# so that work on one area never edits another's lines.

SHELL      := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
GO         ?= go
BIN        ?= bin
export GOFLAGS ?= -trimpath

# Packages that must build and test with CGO_ENABLED=0 (everything but kernels and cmd/tdxl-backend).
NOCGO_PKGS := $(shell $(GO) list ./... 2>/dev/null | grep -v -e '/kernels' -e '/cmd/tdxl-backend' || true)
# Fuzz targets run briefly by `make test`: entries "PACKAGE:FuzzName" (areas append in mk/*.mk).
# A fuzz budget is a count of executions ("Nx"), never a duration: with a duration, Go's fuzz coordinator
# can report its own deadline as a failure ("context deadline exceeded"), a race in the toolchain that made CI flaky.
FUZZ_TARGETS :=
FUZZTIME     ?= 10000x
# Extra prerequisites of `test` and `bench` (areas append in mk/*.mk).
TEST_EXTRA   :=
BENCH_EXTRA  :=

-include mk/*.mk

.PHONY: all build test test-go test-nocgo vet fuzz run bench help tidy-check
all: build

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=1 $(GO) build -o $(BIN)/ ./cmd/...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test-go:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

test-nocgo:
	@if [ -n "$(NOCGO_PKGS)" ]; then CGO_ENABLED=0 $(GO) test -count=1 $(NOCGO_PKGS); fi

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s $$pkg; \
	done

test: build vet test-go test-nocgo fuzz $(TEST_EXTRA)
	@echo "make test: all checks passed"

run: build
	@echo 'try: curl -X POST http://127.0.0.1:5000/api/text2image -d '"'"'{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", "number": 1}'"'"
	$(BIN)/tdxl-backend --listen :5000

bench: $(BENCH_EXTRA)
