# tollgate — see README.md. `make run` starts the sidecar on its embedded
# defaults; `make test` runs every test, installing what it needs.
GO        ?= go
BIN       := bin
PKGS      := ./...
export GOFLAGS := -buildvcs=false

.PHONY: all build run test vet unit fmt-check bench fuzz clean deps bench-sip

all: build

build:
	$(GO) build -o $(BIN)/tollgate ./cmd/tollgate

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

deps:
	@missing=""; for p in $(SIP_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing missing Debian packages:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(SIP_PACKAGES); \
	else \
		echo "missing Debian packages:$$missing"; \
		echo "install them as root with:"; \
		echo "    apt-get update && apt-get install -y $(SIP_PACKAGES)"; \
		exit 1; \
	fi

test: deps fmt-check vet unit

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./matcher/

# Highest call rate with no failed call through Kamailio: relay only, with
# tollgate over http_client, with tollgate over JSON-RPC (see kamailio/README.md).
bench-sip: deps build
	$(GO) run ./kamailio/benchsip -tollgate $(BIN)/tollgate

clean:
	rm -rf $(BIN)
