# The Switchyard proxy as a small image that runs as a non-root user
# (docker-compose.yml builds it; alone: docker build -t switchyard .).
#
# The binary is static either way:
# - Switchyard uses PostgreSQL's own SQL parser (pg_query_go, C code via
#   cgo), so CGO_ENABLED=0 does not build it. It is built with cgo and
#   linked statically against glibc; the netgo and osusergo tags keep out
#   the NSS lookups (DNS, users) that a static glibc cannot do.
# - Should no package outside the standard library need cgo, it is a plain
#   CGO_ENABLED=0 build.
# The runtime image is distroless/static: no shell, no libc, user nonroot
# (uid 65532).

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV GOFLAGS=-buildvcs=false
# The module proxy only (a fallback to direct git fetches hangs on closed
# networks); override with --build-arg GOPROXY=...
ARG GOPROXY=https://proxy.golang.org
ENV GOPROXY=${GOPROXY}
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN set -eu; \
    cgo="$(CGO_ENABLED=1 go list -deps -f '{{if and .CgoFiles (not .Standard)}}{{.ImportPath}}{{end}}' ./cmd/switchyard)"; \
    if [ -z "$cgo" ]; then \
        echo "no cgo packages: CGO_ENABLED=0 build"; \
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
            -o /out/switchyard ./cmd/switchyard; \
    else \
        echo "cgo packages:" $cgo "- static cgo build"; \
        CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
            -ldflags "-s -w -X main.version=${VERSION} -linkmode external -extldflags -static" \
            -o /out/switchyard ./cmd/switchyard; \
    fi; \
    /out/switchyard version; \
    if ldd /out/switchyard >/dev/null 2>&1; then echo "error: /out/switchyard is not static" >&2; exit 1; fi

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY deploy/config.compose.toml /etc/switchyard/config.toml
USER nonroot:nonroot
# PostgreSQL clients, MySQL clients, admin HTTP (metrics, status, reload).
EXPOSE 6432 6033 9930
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["-config", "/etc/switchyard/config.toml"]
