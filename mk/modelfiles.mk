# Model-file packages (engineer B): kernels/safetensors, kernels/model, kernels/tokenizer, kernels/synth.
# All pure Go (no cgo).

MODELFILES_PKGS := ./kernels/safetensors/... ./kernels/model/... ./kernels/tokenizer/... ./kernels/synth/...

FUZZ_TARGETS += ./kernels/safetensors:FuzzParseHeader ./kernels/tokenizer:FuzzEncode ./kernels/model:FuzzComponentConfigs

.PHONY: test-modelfiles
# Quick check of the model-file packages alone (also with CGO_ENABLED=0: they must not need cgo).
test-modelfiles:
	CGO_ENABLED=0 $(GO) vet $(MODELFILES_PKGS)
	$(GO) test -race $(MODELFILES_PKGS)

BENCH_EXTRA += bench-modelfiles

.PHONY: bench-modelfiles
# Throughput of the model-file packages: dtype conversion, tokenizer, weight synthesis.
bench-modelfiles:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./kernels/safetensors ./kernels/tokenizer ./kernels/synth
