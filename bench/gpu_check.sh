#!/bin/bash
# The GPU check: the one script run on the device machine (docs/gpu.md),
# which has PyTorch with CUDA but no Go. `make gpu-payload` prepares .dev/
# here; carry .dev and build/csrc there. Stages, each under its own
# `timeout` and all under TOTAL_TIMEOUT, inside the 10-minute limit of one
# device command:
#   1  unpack the binaries, build libtch.so against the local PyTorch
#   2  every package's test binary (the Makefile's GPU_TEST_PKGS), in its
#      package folder, with CUDA; one summary line per package
#   3  the 2D RealNVP benchmark, Go against PyTorch, CUDA and CPU
#   4  graphs: Glow, VAE and RealNVP at the paper's CIFAR-10 sizes, Go eager,
#      Go with the trainer's captured step, PyTorch eager and PyTorch with a
#      whole-step CUDA graph, 3 rounds; one table and the issue 13 criteria
#   5  NVAE (issue 14): one CIFAR-10-preset training step at batch 200,
#      timed, with the allocator's peak allocated and reserved memory;
#      prints MET / NOT MET / UNMEASURED for a peak allocation <= 80 GB
#      (stages 1-4 take most of the 590 s: run it as `gpu_check.sh 1 5`)
#   6  TensorBoard (issue 15): the real reader (the machine's Python has
#      tensorboard) loads train/tensorboard/testdata/sample, the files our
#      writer produces; MET / NOT MET / UNMEASURED (no tensorboard module)
# Later checks are added here as stages, not as a second script.
#
#   bench/gpu_check.sh              all stages (on the GPU machine)
#   bench/gpu_check.sh 1 2          some stages, with their timeouts (a rerun)
#   bench/gpu_check.sh --stage 2    one stage, no timeout, no log copy; stage
#                                   2 also runs on a CPU (CUDA tests skip)
#
# Logs go to build/gpu_check/ and, when $OUT is set (the device tool), the
# summary, the whole output, the test logs, the stub list and stage 4's
# runs are copied there after each stage. GPU_CHECK_BIN names a folder of
# already unpacked binaries (a CPU dry run, docs/gpu.md).
set -u
cd "$(dirname "$0")/.."  # repository root
ROOT=$PWD
ARCHIVE=$ROOT/.dev/bin.tar.xz   # tchsetup, the bench programs, tests.txt, tests/*.test
BIN=${GPU_CHECK_BIN:-$ROOT/build/gpu}  # unpacked here
WORK=$ROOT/build/gpu_check      # logs
PYTHON=${PYTHON:-python3}
# Seconds per stage, each cut to what is left of TOTAL_TIMEOUT, which
# with a few seconds of copying logs stays under 600 (the device
# command's limit). Stage 4 gets its 300 s unless the earlier stages
# run long: 170 s if all three run to their timeouts (libtch builds in
# about 60 s). A stage with under 20 s left does not start.
TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-590}
STAGE1_TIMEOUT=${STAGE1_TIMEOUT:-150}
STAGE2_TIMEOUT=${STAGE2_TIMEOUT:-210}
STAGE3_TIMEOUT=${STAGE3_TIMEOUT:-50}
STAGE4_TIMEOUT=${STAGE4_TIMEOUT:-300}
STAGE5_TIMEOUT=${STAGE5_TIMEOUT:-120}
STAGE6_TIMEOUT=${STAGE6_TIMEOUT:-40}
# Per package in stage 2; packages run PKG_JOBS at a time.
PKG_TIMEOUT=${PKG_TIMEOUT:-180}
PKG_JOBS=${PKG_JOBS:-$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))}
mkdir -p "$WORK"

TORCH=$($PYTHON -c 'import torch,os;print(os.path.dirname(torch.__file__))' 2>/dev/null)
export LD_LIBRARY_PATH=$ROOT/build/lib${TORCH:+:$TORCH/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The GoMNIST idx files, copied by `make gpu-payload` (no module cache there).
export MOLLIFY_MNIST_DIR=$ROOT/.dev/mnist

# unpack extracts the archive into build/gpu unless it is already there.
unpack() {
  [ -n "${GPU_CHECK_BIN:-}" ] && return 0
  if [ -f "$BIN/.unpacked" ] && [ ! "$ARCHIVE" -nt "$BIN/.unpacked" ]; then return 0; fi
  [ -f "$ARCHIVE" ] || { echo "no $ARCHIVE: run \`make gpu-payload\` and carry .dev"; return 1; }
  rm -rf "$BIN" && mkdir -p "$BIN"
  # Python's tarfile, since xz may be missing there (filter= from 3.12).
  $PYTHON - "$ARCHIVE" "$BIN" <<'EOF' && touch "$BIN/.unpacked"
import sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    if hasattr(tarfile, "tar_filter"):
        tar.extractall(sys.argv[2], filter="tar")
    else:
        tar.extractall(sys.argv[2])
EOF
}

stage1() {
  if [ -d build/gotch ] && [ -z "${GPU_CHECK_FORCE:-}" ]; then
    echo "build/gotch exists: this is a \`make setup\` checkout, whose build/lib stage 1 would replace; set GPU_CHECK_FORCE=1 to do it anyway"
    return 1
  fi
  [ -n "$TORCH" ] || { echo "$PYTHON has no torch"; return 1; }
  echo "torch $TORCH"
  $PYTHON -c 'import torch;print(torch.__version__, torch.cuda.get_device_name(0))'
  g++ --version | head -1
  unpack || return 1
  rm -rf build/obj build/lib
  time LIBTORCH=$TORCH "$BIN/tchsetup" -root . -only-lib -jobs "$(nproc)" 2>&1 | tail -15
  ldd build/lib/libtch.so | grep -E "torch|c10" | head -5
  [ -f build/lib/libtch.so ]
}

# runpkg runs one package's test binary in its folder and writes
# $WORK/tests/NAME.log and the summary line $WORK/tests/NAME.sum.
runpkg() {
  local dir=$1 name=$2 log=$WORK/tests/$2.log t0=$EPOCHREALTIME rc status
  if [ ! -x "$BIN/tests/$name.test" ]; then
    echo "no binary $BIN/tests/$name.test" > "$log"; rc=127
  else
    (cd "$ROOT/$dir" && timeout --foreground -k 5 "$PKG_TIMEOUT" "$BIN/tests/$name.test" \
      -test.v -test.count=1 -test.timeout=$((PKG_TIMEOUT - 10))s) > "$log" 2>&1
    rc=$?
  fi
  local secs pass skip fail
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  pass=$(grep -c '^--- PASS' "$log"); skip=$(grep -c '^--- SKIP' "$log"); fail=$(grep -c '^--- FAIL' "$log")
  if [ $rc -eq 0 ] && [ "$pass" -eq 0 ] && [ "$skip" -gt 0 ]; then status=SKIP
  elif [ $rc -eq 0 ]; then status=PASS
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=FAIL; fail="$fail, timed out after ${PKG_TIMEOUT}s"
  else status=FAIL
  fi
  printf '%-4s %-24s %7ss  %d passed, %d skipped, %s failed (exit %d)\n' \
    "$status" "$dir" "$secs" "$pass" "$skip" "$fail" "$rc" | tee "$WORK/tests/$name.sum"
}

stage2() {
  unpack || return 1
  rm -rf "$WORK/tests" && mkdir -p "$WORK/tests"
  echo "CUDA visible: $($PYTHON -c 'import torch;print(torch.cuda.is_available())' 2>/dev/null || echo "unknown (no torch)")"
  echo "$(wc -l < "$BIN/tests.txt") packages, $PKG_JOBS at a time, ${PKG_TIMEOUT}s each"
  local dir name
  while read -r dir name; do
    while [ "$(jobs -rp | wc -l)" -ge "$PKG_JOBS" ]; do wait -n; done
    runpkg "$dir" "$name" < /dev/null > /dev/null &
  done < "$BIN/tests.txt"
  wait
  summarize
}

# summarize prints the packages' lines in list order (FAIL for one whose
# run did not finish), then each skipped test with its reason and the end
# of each failing package's log.
summarize() {
  local dir name
  echo "== stage 2 summary"
  while read -r dir name; do
    if [ -f "$WORK/tests/$name.sum" ]; then cat "$WORK/tests/$name.sum"
    elif [ -f "$WORK/tests/$name.log" ]; then printf '%-4s %-24s %8s  cut off by the stage timeout\n' FAIL "$dir" -
    else printf '%-4s %-24s %8s  not started before the stage timeout\n' FAIL "$dir" -
    fi
  done < "$BIN/tests.txt" | tee "$WORK/summary.txt"
  echo "$(grep -c '^PASS' "$WORK/summary.txt") PASS, $(grep -c '^SKIP' "$WORK/summary.txt") SKIP, $(grep -c '^FAIL' "$WORK/summary.txt") FAIL of $(wc -l < "$BIN/tests.txt") packages" | tee -a "$WORK/summary.txt"
  echo "== skipped tests"
  while read -r dir name; do
    # -v prints a test's log, the skip reason last, before its --- SKIP.
    [ -f "$WORK/tests/$name.log" ] && awk -v d="$dir" '
      /^=== RUN/ { why = ""; next }
      /^--- SKIP/ { print d ": " $3 ": " why; next }
      /^ +[^ ]+_test\.go:[0-9]+: / { sub(/^ +/, ""); why = $0 }' "$WORK/tests/$name.log"
  done < "$BIN/tests.txt"
  grep '^FAIL' "$WORK/summary.txt" | while read -r _ dir _; do
    name=${dir//\//_}
    [ -s "$WORK/tests/$name.log" ] || continue
    echo "== $dir (failed): its failing tests and the end of its log"
    grep -E '^ *--- FAIL' "$WORK/tests/$name.log"; tail -20 "$WORK/tests/$name.log"
  done
  ! grep -q '^FAIL' "$WORK/summary.txt"
}

# One round of each since stage 4 came (two rounds of 3000 steps before).
stage3() {
  unpack || return 1
  local rc=0
  echo "== bench cuda"
  "$BIN/realnvp2d" -device cuda -steps 1000 -threads 1 || rc=1
  $PYTHON bench/realnvp2d.py --device cuda --steps 1000 --threads 1 || rc=1
  $PYTHON bench/realnvp2d.py --device cuda --steps 1000 --threads 1 --foreach || rc=1
  echo "== bench cpu (1 thread)"
  export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
  "$BIN/realnvp2d" -device cpu -steps 1000 -threads 1 || rc=1
  $PYTHON bench/realnvp2d.py --device cpu --steps 1000 --threads 1 || rc=1
  return $rc
}

# Stage 4's models, rounds and sizes (the paper's CIFAR-10 sizes; a CPU
# dry run sets them small). Each round runs the four rows of each model
# as separate processes, so most of the stage is their start-up: 20 timed
# Glow steps are about 3 s eager on an H200 (6 steps/s), 1 s replayed.
GRAPH_DEVICE=${GRAPH_DEVICE:-cuda}
GRAPH_ROUNDS=${GRAPH_ROUNDS:-3}
GRAPH_RUN_TIMEOUT=${GRAPH_RUN_TIMEOUT:-60}
GRAPH_GLOW=${GRAPH_GLOW:--levels 3 -depth 20 -hidden 512 -batch 64 -steps 20 -warmup 5}
GRAPH_VAE=${GRAPH_VAE:--width 1 -latent 256 -batch 128 -steps 60 -warmup 5}
GRAPH_REALNVP=${GRAPH_REALNVP:--scales 2 -res-blocks 4 -hidden 32 -batch 64 -steps 30 -warmup 5}
GRAPHS=$WORK/graphs.jsonl

# stage4 runs, per model, bench/compare's rounds of Go eager, PyTorch
# eager, Go -cuda-graph (the trainer's captured step, Gaussian-mollified
# as in the first phase of a run) and PyTorch --cuda-graph; every run goes
# to graphs.jsonl, then one table and the criteria. A failed run is a
# FAILED row with its reason; the others go on.
stage4() {
  unpack || return 1
  rm -f "$GRAPHS"
  local rc=0 name bin key args
  while read -r name bin key args; do
    echo "== $name: $args (device $GRAPH_DEVICE, $GRAPH_ROUNDS rounds)"
    "$BIN/compare" -name "$name" -go "$BIN/$bin" -py "bench/$bin.py" -python "$PYTHON" \
      -rounds "$GRAPH_ROUNDS" -foreach=false -go-also=-cuda-graph -py-also=--cuda-graph \
      -keep-going -run-timeout "${GRAPH_RUN_TIMEOUT}s" -append "$GRAPHS" -final-key "$key" \
      -args "-device $GRAPH_DEVICE $args" > /dev/null || rc=1
  done <<MODELS
Glow glow final_nll $GRAPH_GLOW
VAE vae32 final_loss $GRAPH_VAE
RealNVP realnvp final_nll $GRAPH_REALNVP
MODELS
  graphs_summary || rc=1
  return $rc
}

# graphs_summary prints the table of the runs in graphs.jsonl (those that
# finished, when the stage was cut off) and the criteria of issue 13.
graphs_summary() {
  echo "== stage 4 summary"
  [ -s "$GRAPHS" ] || { echo "no run of stage 4 finished" | tee -a "$WORK/summary.txt"; return 1; }
  "$BIN/compare" -summarize "$GRAPHS" -final-label "loss, last steps (nats)" -min-rounds 3 \
    -title "CUDA graphs at the paper's CIFAR-10 sizes: Glow (L=3, K=20, hidden 512, batch 64, Adamax), VAE (Table 4 width 1, latent 256, batch 128, Adam), RealNVP (2 scales, 4 res blocks of 32, batch 64, Adam); device $GRAPH_DEVICE; go-graph = train.Trainer with run.cuda_graph=on, Gaussian-mollified steps" \
    -require "Glow: go-graph/pytorch >= 4" -require "Glow: go-graph/pytorch-graph >= 0.95" \
    -require "VAE: go-graph/pytorch >= 2" | tee -a "$WORK/summary.txt"
  return "${PIPESTATUS[0]}"
}

# Stage 5's run: the CIFAR-10 preset (configs/nvae_cifar10.yaml) at the
# paper's batch 200, 2 untimed and 3 timed eager steps; a CPU dry run sets
# NVAE_DEVICE=cpu and NVAE_ARGS small (docs/gpu.md).
NVAE_DEVICE=${NVAE_DEVICE:-cuda}
NVAE_ARGS=${NVAE_ARGS:--batch 200 -warmup 2 -steps 3}
NVAE_JSON=$WORK/nvae.json

# stage5 times the NVAE step and checks issue 14's memory criterion from
# the allocator's peak (warm-up included): MET or NOT MET when the run
# reports peak_alloc_mb, UNMEASURED when it failed or has no peak (a CPU
# run, a libtch without the CUDA statistics).
stage5() {
  unpack || return 1
  rm -f "$NVAE_JSON"
  echo "== nvae: -preset nvae_cifar10 -device $NVAE_DEVICE $NVAE_ARGS"
  # shellcheck disable=SC2086
  "$BIN/nvae" -preset nvae_cifar10 -device "$NVAE_DEVICE" $NVAE_ARGS > "$NVAE_JSON"
  local rc=$?
  cat "$NVAE_JSON"
  echo "== stage 5 summary"
  $PYTHON - "$NVAE_JSON" "$rc" <<'EOF' | tee -a "$WORK/summary.txt"
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
try:
    r = json.loads(open(path).read().strip().splitlines()[-1])
except Exception:
    r = {}
what = "NVAE CIFAR-10 preset, batch 200: peak allocation <= 80 GB"
if rc != 0 or "peak_alloc_mb" not in r:
    why = "the run failed (exit %d)" % rc if rc != 0 else "no allocator statistics (not CUDA?)"
    print("UNMEASURED  %s: %s" % (what, why))
    sys.exit(1)
print("batch %d: %.2f s/step (%.3f steps/s), peak allocated %.1f GB, peak reserved %.1f GB, %d parameters, final loss %.1f" % (
    r["batch"], 1 / r["steps_per_s"], r["steps_per_s"], r["peak_alloc_mb"] * 2**20 / 1e9,
    r["peak_reserved_mb"] * 2**20 / 1e9, r["params"], r["final_loss"]))
print("%s  %s" % ("MET" if r["fits_limit"] else "NOT MET", what))
sys.exit(0 if r["fits_limit"] else 1)
EOF
  return "${PIPESTATUS[0]}"
}

# stage6 reads the committed sample event files (a killed run's file and
# its resume's, written by train/tensorboard; the writer test keeps them
# byte-identical to what it writes) with TensorBoard's EventAccumulator:
# the resumed curve without the killed run's step 3, the image, the tags.
# Needs no libtch and no stage 1.
stage6() {
  echo "== stage 6 summary"
  $PYTHON - "$ROOT/train/tensorboard/testdata/sample" <<'EOF' 2>&1 | tee -a "$WORK/summary.txt"
import sys
what = "TensorBoard's EventAccumulator reads train/tensorboard's event files"
try:
    import tensorboard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except Exception as e:
    print("UNMEASURED  %s: no tensorboard module (%s)" % (what, e)); sys.exit(1)
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0}); ea.Reload()
problems = []
loss = [(e.step, e.value) for e in ea.Scalars("train/loss")]
if loss != [(1, 3.0), (2, 2.0), (3, 1.25), (4, 1.0)]: problems.append("train/loss %r" % loss)
bpd = [(e.step, e.value) for e in ea.Scalars("eval/bpd")]
if bpd != [(4, 2.5)]: problems.append("eval/bpd %r" % bpd)
im = [(i.step, i.width, i.height, i.encoded_image_string[:4]) for i in ea.Images("samples")]
if im != [(2, 4, 3, b"\x89PNG")]: problems.append("samples %r" % im)
print("tensorboard", tensorboard.__version__, ea.Tags())
print("%s  %s%s" % ("NOT MET" if problems else "MET", what, ": " + "; ".join(problems) if problems else ""))
sys.exit(1 if problems else 0)
EOF
  return "${PIPESTATUS[0]}"
}

# copyout puts the logs in $OUT (at most 8 files come back; these are 6).
copyout() {
  [ -n "${OUT:-}" ] || return 0
  cp "$WORK/summary.txt" "$OUT/" 2>/dev/null
  cp "$GRAPHS" "$OUT/" 2>/dev/null
  cp "$NVAE_JSON" "$OUT/" 2>/dev/null
  cp build/stubs.txt "$OUT/stubs.txt" 2>/dev/null
  [ -d "$WORK/tests" ] && tar -C "$WORK" -czf "$OUT/test-logs.tar.gz" tests
  [ -f "$WORK/gpu_check.log" ] && cp "$WORK/gpu_check.log" "$OUT/"
  return 0
}

if [ "${1:-}" = "--stage" ]; then
  case "${2:-}" in
    1) stage1 ;; 2) stage2 ;; 3) stage3 ;; 4) stage4 ;; 5) stage5 ;; 6) stage6 ;;
    *) echo "usage: $0 [--stage 1|2|3|4|5|6]"; exit 2 ;;
  esac
  exit
fi

stages=("$@"); [ $# -eq 0 ] && stages=(1 2 3 4 5 6)
for s in "${stages[@]}"; do
  case $s in 1|2|3|4|5|6) ;; *) echo "usage: $0 [--stage N | N...], N in 1 2 3 4 5 6"; exit 2 ;; esac
done
exec > >(tee "$WORK/gpu_check.log") 2>&1
TEE=$!
: > "$WORK/summary.txt"; rm -rf "$WORK/tests"
failed=0
declare -A timeouts=([1]=$STAGE1_TIMEOUT [2]=$STAGE2_TIMEOUT [3]=$STAGE3_TIMEOUT [4]=$STAGE4_TIMEOUT [5]=$STAGE5_TIMEOUT [6]=$STAGE6_TIMEOUT)
results=()
start=$SECONDS
for s in "${stages[@]}"; do
  # The stage's timeout, cut to what is left of the whole (less the 10 s
  # that timeout -k may add).
  left=$((TOTAL_TIMEOUT - (SECONDS - start) - 10))
  limit=${timeouts[$s]}; [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 20 ]; then
    echo "== stage $s: not started, ${left}s left of ${TOTAL_TIMEOUT}s"
    results+=("stage $s: not started (${left}s left of ${TOTAL_TIMEOUT}s)"); failed=1
    continue
  fi
  echo "== stage $s (timeout ${limit}s)"
  t0=$SECONDS
  timeout -k 10 "$limit" bash "$ROOT/bench/gpu_check.sh" --stage "$s"
  rc=$?
  cut=""; if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then cut=" (timed out)"; fi
  [ $s = 2 ] && [ -n "$cut" ] && summarize  # cut off: list what finished
  [ $s = 4 ] && [ -n "$cut" ] && graphs_summary
  results+=("stage $s: exit $rc in $((SECONDS - t0))s$cut")
  [ $rc -eq 0 ] || failed=1
  copyout
  # Without libtch.so nothing else can run.
  if [ $s = 1 ] && [ $rc -ne 0 ]; then echo "stage 1 failed: skipping the rest"; break; fi
done
echo "== gpu check"; printf '%s\n' "${results[@]}" | tee -a "$WORK/summary.txt"
exec >&- 2>&-; wait $TEE  # let tee finish the log before the last copy
copyout
exit $failed
