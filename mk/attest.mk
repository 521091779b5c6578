# attest area (owner E1): evidence format, TEE providers, runtime measurements, test TEE.

FUZZ_TARGETS += ./attest:FuzzUnmarshalEvidence

.PHONY: test-attest
# Quick loop for the attest area alone.
test-attest:
	CGO_ENABLED=0 $(GO) test ./attest/...
	CGO_ENABLED=1 $(GO) test -race ./attest/...
