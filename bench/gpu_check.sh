#!/bin/bash
# The GPU check: the one script run on the device machine (docs/gpu.md),
# which has PyTorch with CUDA but no Go. `make gpu-payload` prepares .dev/
# here; carry .dev and build/csrc there. Stages, each under its own
# `timeout`, together inside the 10-minute limit of one device command:
#   1  unpack the binaries, build libtch.so against the local PyTorch
#   2  every package's test binary (the Makefile's GPU_TEST_PKGS), in its
#      package folder, with CUDA; one summary line per package
#   3  the 2D RealNVP benchmark, Go against PyTorch, CUDA and CPU
# Later checks are added here as stages, not as a second script.
#
#   bench/gpu_check.sh              all stages (on the GPU machine)
#   bench/gpu_check.sh 1 2          some stages, with their timeouts (a rerun)
#   bench/gpu_check.sh --stage 2    one stage, no timeout, no log copy; stage
#                                   2 also runs on a CPU (CUDA tests skip)
#
# Logs go to build/gpu_check/ and, when $OUT is set (the device tool), the
# summary, the whole output, the test logs and the stub list are copied
# there after each stage.
set -u
cd "$(dirname "$0")/.."  # repository root
ROOT=$PWD
ARCHIVE=$ROOT/.dev/bin.tar.xz   # tchsetup, realnvp2d, tests.txt, tests/*.test
BIN=$ROOT/build/gpu             # unpacked here
WORK=$ROOT/build/gpu_check      # logs
PYTHON=${PYTHON:-python3}
# Seconds per stage; their sum, plus a few seconds of copying logs, stays
# under 600 (the device command's limit).
STAGE1_TIMEOUT=${STAGE1_TIMEOUT:-150}
STAGE2_TIMEOUT=${STAGE2_TIMEOUT:-270}
STAGE3_TIMEOUT=${STAGE3_TIMEOUT:-150}
# Per package in stage 2; packages run PKG_JOBS at a time.
PKG_TIMEOUT=${PKG_TIMEOUT:-240}
PKG_JOBS=${PKG_JOBS:-$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))}
mkdir -p "$WORK"

TORCH=$($PYTHON -c 'import torch,os;print(os.path.dirname(torch.__file__))' 2>/dev/null)
export LD_LIBRARY_PATH=$ROOT/build/lib${TORCH:+:$TORCH/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The GoMNIST idx files, copied by `make gpu-payload` (no module cache there).
export MOLLIFY_MNIST_DIR=$ROOT/.dev/mnist

# unpack extracts the archive into build/gpu unless it is already there.
unpack() {
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

stage3() {
  unpack || return 1
  local rc=0 i
  echo "== bench cuda"
  for i in 1 2; do
    "$BIN/realnvp2d" -device cuda -steps 3000 -threads 1 || rc=1
    $PYTHON bench/realnvp2d.py --device cuda --steps 3000 --threads 1 || rc=1
    $PYTHON bench/realnvp2d.py --device cuda --steps 3000 --threads 1 --foreach || rc=1
  done
  echo "== bench cpu (1 thread)"
  export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
  "$BIN/realnvp2d" -device cpu -steps 2000 -threads 1 || rc=1
  $PYTHON bench/realnvp2d.py --device cpu --steps 2000 --threads 1 || rc=1
  return $rc
}

# copyout puts the logs in $OUT (at most 8 files come back; these are 4).
copyout() {
  [ -n "${OUT:-}" ] || return 0
  cp "$WORK/summary.txt" "$OUT/" 2>/dev/null
  cp build/stubs.txt "$OUT/stubs.txt" 2>/dev/null
  [ -d "$WORK/tests" ] && tar -C "$WORK" -czf "$OUT/test-logs.tar.gz" tests
  [ -f "$WORK/gpu_check.log" ] && cp "$WORK/gpu_check.log" "$OUT/"
  return 0
}

if [ "${1:-}" = "--stage" ]; then
  case "${2:-}" in
    1) stage1 ;; 2) stage2 ;; 3) stage3 ;;
    *) echo "usage: $0 [--stage 1|2|3]"; exit 2 ;;
  esac
  exit
fi

stages=("$@"); [ $# -eq 0 ] && stages=(1 2 3)
for s in "${stages[@]}"; do
  case $s in 1|2|3) ;; *) echo "usage: $0 [--stage N | N...], N in 1 2 3"; exit 2 ;; esac
done
exec > >(tee "$WORK/gpu_check.log") 2>&1
TEE=$!
: > "$WORK/summary.txt"; rm -rf "$WORK/tests"
failed=0
declare -A timeouts=([1]=$STAGE1_TIMEOUT [2]=$STAGE2_TIMEOUT [3]=$STAGE3_TIMEOUT)
results=()
for s in "${stages[@]}"; do
  echo "== stage $s (timeout ${timeouts[$s]}s)"
  t0=$SECONDS
  timeout -k 10 "${timeouts[$s]}" bash "$ROOT/bench/gpu_check.sh" --stage "$s"
  rc=$?
  cut=""; if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then cut=" (timed out)"; fi
  [ $s = 2 ] && [ -n "$cut" ] && summarize  # cut off: list what finished
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
