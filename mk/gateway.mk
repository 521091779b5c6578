# mk/gateway.mk — the attested TLS front: gateway/, gateway/envelope, gateway/receipt,
# gateway/gatewaytest and cmd/tdxl-gateway (engineer E2). Pure Go (CGO_ENABLED=0).
#
#   make test-gateway   the gateway area alone: CGO_ENABLED=0 tests, then -race
#   make bench-gateway  evidence (cached vs fresh simulated quote) and proxy overhead benchmarks
#   make run-gateway    bin/tdxl-gateway with the simulated TEE in front of `make run`'s backend
#                       (writes the simulated root to bin/simulated-root.pem for `tdxl verify --trust-root`)

FUZZ_TARGETS += ./gateway/envelope:FuzzOpenEvidence
FUZZ_TARGETS += ./gateway/receipt:FuzzVerifyReceipt
FUZZ_TARGETS += ./gateway:FuzzAddJSONField
FUZZ_TARGETS += ./gateway:FuzzParseNonce

TEST_EXTRA  += test-gateway-nocgo-build
BENCH_EXTRA += bench-gateway

.PHONY: test-gateway test-gateway-nocgo-build run-gateway bench-gateway

bench-gateway:
	CGO_ENABLED=0 $(GO) test -run='^$$' -bench=. -benchtime=500x -count=3 ./gateway/

test-gateway:
	CGO_ENABLED=0 $(GO) test ./gateway/... ./cmd/tdxl-gateway/...
	CGO_ENABLED=1 $(GO) test -race ./gateway/... ./cmd/tdxl-gateway/...

# The gateway binary is pure Go: prove it links without cgo.
test-gateway-nocgo-build:
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/tdxl-gateway

run-gateway:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/tdxl-gateway
	$(BIN)/tdxl-gateway --tee simulated --simulated-root $(BIN)/simulated-root.pem \
	  --backend http://127.0.0.1:5000 --listen :8443
