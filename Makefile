# mollify. `make demo` runs the main job, `make test` runs the tests; both
# run `make setup` first, which installs libtorch if needed and builds the
# patched gotch (tools/tchsetup). Benchmarks and long runs are targets here,
# not tests.
SHELL := /bin/bash
GO ?= go
JOBS ?= $(shell nproc)
# Threads for libtorch and OpenBLAS in benchmarks, the same for Go and Python.
THREADS ?= 1
BENCH_ENV := OPENBLAS_NUM_THREADS=$(THREADS) OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS)
PYTHON ?= /usr/bin/python3
BIN := build/bin

.PHONY: setup test demo bench soak gcstress pydeps gpu-payload clean

setup:
	$(GO) -C tools/tchsetup run . -root "$(CURDIR)" -jobs $(JOBS)

test: setup
	$(GO) build ./...
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

demo: setup
	$(GO) run ./cmd/train -config demo

# Debian's PyTorch on the same libtorch, for baselines and golden values.
pydeps:
	@$(PYTHON) -c 'import torch, numpy, scipy' 2>/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get install -y -q python3-torch python3-numpy python3-scipy || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q python3-torch python3-numpy python3-scipy; }; }

$(BIN)/realnvp2d: setup
	$(GO) build -o $@ ./bench/realnvp2d

# The 2D RealNVP training step in Go and in PyTorch eager, side by side.
bench: setup pydeps $(BIN)/realnvp2d
	$(BENCH_ENV) $(GO) run ./bench/compare -go $(BIN)/realnvp2d -py bench/realnvp2d.py -python $(PYTHON) \
	  -rounds 3 -args "-steps 3000 -threads $(THREADS)"

# 100k steps: RSS from step 10k to 100k must grow less than 5%.
soak: $(BIN)/realnvp2d
	$(BENCH_ENV) $(GO) run ./bench/soak -bin $(BIN)/realnvp2d -steps 100000 -every 10000

# 20 runs of 20k steps with GOGC=5, which surfaces finalizer races.
gcstress: $(BIN)/realnvp2d
	@for i in $$(seq 20); do \
	  $(BENCH_ENV) GOGC=5 $(BIN)/realnvp2d -steps 20000 -warmup 0 > /dev/null || { echo "run $$i failed"; exit 1; }; \
	  echo "run $$i/20 ok"; done

clean:
	rm -rf build

# Binaries and C++ sources for a GPU machine without Go: carry .dev and
# build/csrc there and run bench/gpu_check.sh (see docs/gpu.md).
gpu-payload: setup
	mkdir -p .dev
	cd tools/tchsetup && CGO_ENABLED=0 $(GO) build -o ../../.dev/tchsetup .
	$(GO) test -c -ldflags='-s -w' -o .dev/nn.test ./nn
	$(GO) test -c -ldflags='-s -w' -o .dev/flows.test ./flows
	$(GO) build -ldflags='-s -w' -o .dev/realnvp2d ./bench/realnvp2d
