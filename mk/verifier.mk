# mk/verifier.mk — policy, verifier and the tdxl client (engineer F).

FUZZ_TARGETS += ./policy:FuzzParse ./verifier:FuzzVerifyTDXQuote ./verifier:FuzzVerifySNPReport

TEST_EXTRA   += verifier-cross

.PHONY: verifier-cross
# The client must build for every desktop OS, pure Go.
verifier-cross:
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/tdxl
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/tdxl
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -o /dev/null ./cmd/tdxl
