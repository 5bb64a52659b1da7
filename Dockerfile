# multiserve container image: docker build -t multiserve --build-arg VERSION=$(git describe --always) .
#
# The arbiter runs as PID 1, with no init in front of it: it handles TERM
# itself (shutdown_delay, then the accept queue, then graceful_timeout; see
# docs/deploy.md), tells its workers only what they must hear, and reaps the
# orphaned processes the kernel hands to PID 1. An init that forwarded TERM
# to every process would skip that sequence.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN deploy/build-static.sh /out/multiserve "$VERSION"

# distroless static: no shell, no libc, CA certificates and a nonroot user
# (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/multiserve /usr/local/bin/multiserve
USER 65532:65532
EXPOSE 8000 9100
ENTRYPOINT ["/usr/local/bin/multiserve"]
CMD ["--config", "/etc/multiserve/multiserve.toml"]
