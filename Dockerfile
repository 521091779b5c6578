# syntax=docker/dockerfile:1.7
#
# tdxl images: tdxl-backend (text-to-image API, :5000) and tdxl-gateway (attested TLS front, :8443).
# Two targets, as the seed's two tags (make image / make image-lite):
#
#   full  the model baked in at /opt/tdxl/models/stabilityai/sdxl-turbo; the model folder comes in as the
#         named build context "model" (it never enters the repository's context):
#           docker build --target full --build-context model=/path/to/sdxl-turbo -t IMAGE:TAG .
#   lite  no model: expects the chart's volumes.models mount (useCustomModels: true):
#           docker build --target lite -t IMAGE:TAG-lite .
#
# The build stage runs `make build`, the target `make test` builds with: the C++ core is compiled for the
# portable x86-64 baseline and picks AVX2 / AVX-512 / AMX kernels at run time from CPUID, so one image
# runs on AMX (g8i) and non-AMX nodes. Nothing here sets -march or CGO_CFLAGS.
#
# For reproducible measurements (the gateway extends RTMR3 with the binaries' SHA-256), pin both base
# images by digest: --build-arg GO_IMAGE=golang@sha256:... --build-arg RUNTIME_IMAGE=...@sha256:...

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build

# Runtime: glibc + libstdc++ only (distroless cc, same Debian release as the build stage), no shell,
# no compilers, no package manager. Only the two server binaries.
FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /src/bin/tdxl-backend /src/bin/tdxl-gateway /usr/local/bin/
# The root filesystem is read-only in the chart: everything written goes under /tmp (an emptyDir).
ENV HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TDXL_OUTPUT_DIR=/tmp/sd
USER 1000:1000
EXPOSE 5000 8443
ENTRYPOINT ["/usr/local/bin/tdxl-backend"]

FROM runtime AS full
COPY --from=model --chown=0:0 / /opt/tdxl/models/stabilityai/sdxl-turbo/
ENV TDXL_MODEL_DIR=/opt/tdxl/models/stabilityai/sdxl-turbo

# Last stage: the default target (builds without a model context).
FROM runtime AS lite
