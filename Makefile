# mollify. `make demo` runs the main job, `make test` runs the tests; both
# run `make setup` first, which installs libtorch if needed and builds the
# patched gotch (see tools/tchsetup).
SHELL := /bin/bash
GO ?= go
JOBS ?= $(shell nproc)

.PHONY: setup test demo bench soak race-gc clean

setup:
	$(GO) -C tools/tchsetup run . -root "$(CURDIR)" -jobs $(JOBS)

test: setup
	$(GO) build ./...
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

clean:
	rm -rf build
