# tollgate — see README.md. `make run` starts the sidecar on its embedded
# defaults; `make test` runs every test, installing what it needs.
GO        ?= go
BIN       := bin
PKGS      := ./...
export GOFLAGS := -buildvcs=false

.PHONY: all build run test vet unit fmt-check bench bench-go bench-load bench-deps bench-wrk fuzz clean deps bench-sip

all: build

build:
	$(GO) build -o $(BIN)/tollgate ./cmd/tollgate
	$(GO) build -o $(BIN)/tollgate-loadtest ./loadtest

run: build
	./$(BIN)/tollgate

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 $(PKGS)

# The Kamailio edge tests (kamailio/) run a real Kamailio and sipp, and the
# OpenSIPS config test runs m4 as OpenSIPS's -p preprocessor would: install
# the Debian packages when they are missing (as root), or say how.
SIP_PACKAGES := kamailio kamailio-utils-modules kamailio-extra-modules sip-tester m4
# deploy/ runs `promtool check rules` and `promtool test rules` on the alerting
# rules; promtool ships in Debian's prometheus package (2.42 in bookworm). On a
# host with systemd that package also enables a Prometheus service on :9090;
# `systemctl disable --now prometheus` if you only wanted promtool.
PROM_PACKAGES := prometheus
# handler/'s console tests drive a real headless Chromium (docs/console.md).
BROWSER_PACKAGES := chromium
TEST_PACKAGES := $(SIP_PACKAGES) $(PROM_PACKAGES) $(BROWSER_PACKAGES)

deps:
	@missing=""; for p in $(TEST_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing missing Debian packages:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(TEST_PACKAGES); \
	else \
		echo "missing Debian packages:$$missing"; \
		echo "install them as root with:"; \
		echo "    apt-get update && apt-get install -y $(TEST_PACKAGES)"; \
		exit 1; \
	fi

test: deps fmt-check vet unit

# `make bench` (docs/benchmarks.md): the Go benchmarks (medians of 5 runs),
# then tollgate with 100,000 accounts and 1,000,000 high-risk prefixes under
# bin/tollgate-loadtest, against nginx serving a constant 200 in the same run.
# nginx is the reference only, so it is not in SIP_PACKAGES: `make test`
# does not need it. BENCH_FLAGS passes flags to the driver (go run ./bench -h).
BENCH_PACKAGES := nginx-light wrk
BENCH_FLAGS    ?=

bench-deps:
	@missing=""; for p in $(BENCH_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing missing Debian packages:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(BENCH_PACKAGES); \
	else \
		echo "missing Debian packages:$$missing"; \
		echo "install them as root with:"; \
		echo "    apt-get update && apt-get install -y $(BENCH_PACKAGES)"; \
		exit 1; \
	fi

bench: bench-deps build
	$(GO) run ./bench -tollgate $(BIN)/tollgate -loadtest $(BIN)/tollgate-loadtest $(BENCH_FLAGS)
	@$(MAKE) --no-print-directory bench-wrk

# Issue 17's comparison: GET /v1/check against nginx's constant 200 with
# everything unpinned (GOMAXPROCS=2, 2 nginx workers, wrk on the same two
# cores), interleaved rounds; ends with the `ratio: wrk unpinned` lines. The
# generated policy is kept in WRK_WORK and reused.
WRK_WORK    ?= /tmp/tollgate-bench-wrk
WRK_ROUNDS  ?= 5
WRK_SECONDS ?= 5

bench-wrk: bench-deps build
	@test -d $(WRK_WORK)/data || $(GO) run ./bench -gen-only -work $(WRK_WORK) -tollgate $(BIN)/tollgate
	TOLLGATE=$(BIN)/tollgate bench/wrk-ratio.sh $(WRK_WORK) $(WRK_ROUNDS) $(WRK_SECONDS)

# The Go benchmarks alone, and the load part alone.
bench-go:
	$(GO) run ./bench -load=false $(BENCH_FLAGS)

bench-load: bench-deps build
	$(GO) run ./bench -go=false -tollgate $(BIN)/tollgate -loadtest $(BIN)/tollgate-loadtest $(BENCH_FLAGS)

# Highest call rate with no failed call through Kamailio: relay only, with
# tollgate over http_client, with tollgate over JSON-RPC (see kamailio/README.md).
bench-sip: deps build
	$(GO) run ./kamailio/benchsip -tollgate $(BIN)/tollgate

clean:
	rm -rf $(BIN)
