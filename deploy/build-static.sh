#!/bin/sh
# Builds the release binary: static (CGO_ENABLED=0, no dynamic loader, so it
# runs on a base image without libc), reproducible paths (-trimpath), no
# symbol table (-s -w), the version stamped in. The Dockerfile and `make
# static` run this script, and test/container checks the binary it makes,
# so all three build it the same way.
#
# usage: deploy/build-static.sh OUTPUT [VERSION]
set -eu
out=${1:?usage: deploy/build-static.sh OUTPUT [VERSION]}
version=${2:-$(git describe --always --dirty 2>/dev/null || echo dev)}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec go build -trimpath \
	-ldflags "-s -w -X github.com/multiserve/multiserve/internal/version.Version=$version" \
	-o "$out" ./cmd/multiserve
