# tollgate — see README.md. `make run` starts the sidecar on its embedded
# defaults; `make test` runs every test, installing what it needs.
GO        ?= go
BIN       := bin
PKGS      := ./...
export GOFLAGS := -buildvcs=false

.PHONY: all build run test vet unit fmt-check bench fuzz clean

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

test: fmt-check vet unit

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./matcher/

clean:
	rm -rf $(BIN)
