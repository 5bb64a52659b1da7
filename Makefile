# multiserve — build, run, test. `make run` and `make test` are the quick start.
GO      ?= go
BIN     := bin/multiserve
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/multiserve/multiserve/internal/version.Version=$(VERSION)
ARGS    ?= --bind 127.0.0.1:8000 --workers 2 hello

.PHONY: build static run test test-short lint docs fuzz bench bench-quick bench-deps clean test-chaos test-lb

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/multiserve

# The container image's binary: static, as the Dockerfile builds it.
static:
	deploy/build-static.sh bin/multiserve-static $(VERSION)

run: build
	./$(BIN) $(ARGS)

# The whole suite: lint, unit + real-process tests under the race detector
# (the h1probe corpus runs against every class in cmd/multiserve's tests),
# the Kubernetes manifests' checks (a module of their own, which ./... skips),
# 20,000 inputs of each fuzz target (a count, not a duration: with Go 1.26 a
# -fuzztime duration can end in a spurious "context deadline exceeded"
# failure from the fuzzing coordinator, go.dev/issue/75804, fixed in
# Go 1.27), and the quick bench.
test: lint
	$(GO) test -race -count=1 -timeout 12m ./...
	cd deploy/kubernetes/manifests_test && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(MAKE) fuzz FUZZTIME=20000x
	$(MAKE) bench-quick

# Fuzz the parser and the chunked decoder (make fuzz FUZZTIME=5m for longer).
FUZZTIME ?= 60s
FUZZ_TARGETS := FuzzParseRequest FuzzChunked FuzzDifferential
fuzz:
	@for f in $(FUZZ_TARGETS); do \
		echo "fuzz $$f $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./h1 || exit 1; \
	done

test-short:
	$(GO) test -short -count=1 ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

docs: build
	./$(BIN) settings --markdown > docs/settings.md

clean:
	rm -rf bin

# Bench (owned by bench/; see bench/README.md). `bench` is the full matrix
# (3 interleaved rounds of 2 s per measurement, about 40 minutes; it prints an ETA) into bench/results/<UTC time>/; `bench-quick` is bounded (< 2 min,
# hard timeout) and exits 0 even when some worker classes are unavailable.
BENCH_BIN  := bin/bench
BENCH_ARGS ?=
BENCH_OUT  ?= $(or $(TMPDIR),/tmp)/multiserve-bench-quick

bench:
	$(GO) build -o $(BENCH_BIN) ./bench
	./$(BENCH_BIN) --nice -10 $(BENCH_ARGS)

bench-quick:
	$(GO) build -o $(BENCH_BIN) ./bench
	timeout -k 10 170 ./$(BENCH_BIN) --quick --out $(BENCH_OUT) $(BENCH_ARGS)

bench-deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y wrk nginx gunicorn python3-gevent

# Fault suite (owned by test/chaos): real processes of every worker class
# under kill -9 / HUP / TTIN-TTOU storms, TERM, hostile clients, fd
# exhaustion; prints a per-class summary table. Quick mode by default
# (about 4 minutes on 2 cores); CHAOS_FULL=1 runs the issue's durations.
test-chaos:
	CHAOS_QUICK=$(if $(CHAOS_FULL),0,1) $(GO) test -tags chaos -race=false -count=1 -timeout 10m ./test/chaos -v

# Rolling deploy behind nginx (test/lb, build tag lb): three instances, each
# replaced by a new binary under load, zero non-2xx at nginx; prints
# requests per instance per second. About 20 s; skips, saying so, without nginx.
test-lb:
	$(GO) test -tags lb -count=1 -timeout 5m ./test/lb -v
