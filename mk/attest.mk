# attest area (owner E1): evidence format, TEE providers, runtime measurements, test TEE.

ATTEST_PKGS := ./attest/...
# Packages allowed to link net/http: sevtest wraps go-sev-guest's testing and
# verify/trust packages (fake KDS getter, AMD roots), which import it. It is
# used by tests only.
ATTEST_HTTP_OK := github.com/tdxl/tdxl/attest/testtee/sevtest

FUZZ_TARGETS += ./attest:FuzzUnmarshalEvidence ./attest/measure:FuzzCanonicalizeJSON
TEST_EXTRA   += check-attest-deps

.PHONY: test-attest check-attest-deps
# Quick loop for the attest area alone.
test-attest: check-attest-deps
	CGO_ENABLED=0 $(GO) vet $(ATTEST_PKGS)
	CGO_ENABLED=0 $(GO) test $(ATTEST_PKGS)
	CGO_ENABLED=1 $(GO) test -race $(ATTEST_PKGS)
	CGO_ENABLED=0 GOOS=darwin $(GO) build ./attest ./attest/measure ./attest/provider ./attest/testtee

# attest knows nothing of HTTP: no attest package (but the ones listed in
# ATTEST_HTTP_OK) may link net/http, directly or transitively.
check-attest-deps:
	@bad=""; for p in $$(CGO_ENABLED=0 $(GO) list $(ATTEST_PKGS)); do \
	  case " $(ATTEST_HTTP_OK) " in *" $$p "*) continue;; esac; \
	  if CGO_ENABLED=0 $(GO) list -deps $$p | grep -qx 'net/http'; then bad="$$bad $$p"; fi; \
	done; \
	if [ -n "$$bad" ]; then echo "check-attest-deps: these attest packages link net/http:$$bad"; exit 1; fi; \
	echo "check-attest-deps: no attest package links net/http (allowed: $(ATTEST_HTTP_OK))"
