# deploy/: Helm chart, Dockerfile, CI policy examples (engineer G).
#
#   make test-deploy       render + lint the chart and check the Dockerfile (separate Go module deploy/,
#                          so Helm's and Kubernetes' dependency trees stay out of the main module)
#   make deploy-examples   regenerate deploy/examples/rendered/*.yaml (`helm template` output; a test
#                          fails when they are stale)
#   make image             docker build the full image (model baked in): MODEL_DIR=path/to/sdxl-turbo
#   make image-lite        docker build the lite image (expects the model volume, useCustomModels)
#   make lint-policies     `tdxl policy lint` on deploy/policies/*.yaml, as deploy/ci/policy-lint.yml does

IMAGE         ?= ghcr.io/tdxl/tdxl
IMAGE_TAG     ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' deploy/helm/tdxl/Chart.yaml)
DOCKER        ?= docker
MODEL_DIR     ?=
DEPLOY_RENDER := $(BIN)/chartrender -chart deploy/helm/tdxl

TEST_EXTRA += test-deploy

.PHONY: test-deploy deploy-examples image image-lite lint-policies

test-deploy:
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

deploy-examples:
	@mkdir -p deploy/examples/rendered $(BIN)
	cd deploy && $(GO) build -o ../$(BIN)/chartrender ./cmd/chartrender
	$(DEPLOY_RENDER) -o deploy/examples/rendered/default.yaml
	$(DEPLOY_RENDER) -o deploy/examples/rendered/tdx.yaml deploy/examples/tdx-values.yaml

# The build stage runs `make build`, the same target `make test` builds with (portable baseline,
# ISA chosen at run time). The full image takes the model folder as a named build context.
image:
	@test -n "$(MODEL_DIR)" || { echo "make image: set MODEL_DIR to a diffusers sdxl-turbo folder (or use make image-lite)"; exit 1; }
	DOCKER_BUILDKIT=1 $(DOCKER) build --target full --build-context model=$(MODEL_DIR) -t $(IMAGE):$(IMAGE_TAG) .

image-lite:
	DOCKER_BUILDKIT=1 $(DOCKER) build --target lite -t $(IMAGE):$(IMAGE_TAG)-lite .

lint-policies:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/tdxl ./cmd/tdxl
	$(BIN)/tdxl policy lint deploy/policies/*.yaml
	$(BIN)/tdxl policy lint --strict deploy/policies/tdx-*.yaml
