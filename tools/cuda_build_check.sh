#!/bin/bash
# make cuda-build-check: builds libtch.so, with the patch series, against a
# CUDA libtorch on this machine, which has no GPU and no CUDA libtorch of
# its own. The CUDA-only units (mollify_cuda.cpp: CUDA graphs and allocator
# statistics; mollify_c10d_nccl.cpp: the NCCL process group) are otherwise
# first compiled on the GPU machine, whose minutes are scarce; here they
# are compiled and linked against Debian's own CUDA build of PyTorch
# (trixie contrib: libtorch-cuda 2.6, CUDA 12.4, NCCL 2.22), unpacked with
# dpkg -x into build/cuda-check, never installed. Nothing is run: there is
# no GPU, and trixie's libraries need a newer glibc than this machine's.
#
# Fails if any of those units (or the Gloo unit) did not compile and a
# stand-in took its place. Downloads about 1.6 GB once (kept in
# build/cuda-check/debs), then takes about 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
D=${CUDA_CHECK_DIR:-$ROOT/build/cuda-check}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
# Headers and libraries that the CUDA units include or link: libtorch-cuda
# and its headers, the CUDA runtime headers, NCCL's, and libcu++ (nv/target,
# which cuda_fp16.h includes).
PKGS=(libtorch-cuda-dev libtorch-cuda-2.6 nvidia-cuda-dev libnccl-dev libcu++-dev)

mkdir -p "$D/debs" "$D/index"
for comp in main contrib non-free; do
  idx=$D/index/$SUITE-$comp
  [ -s "$idx" ] || curl -fsS --retry 3 "$MIRROR/dists/$SUITE/$comp/binary-amd64/Packages.xz" | xz -d >"$idx"
done
for p in "${PKGS[@]}"; do
  f=$(awk -v p="$p" '$1=="Package:"{hit=($2==p)} hit&&$1=="Filename:"{print $2; exit}' "$D"/index/$SUITE-*)
  [ -n "$f" ] || { echo "cuda-build-check: $p is not in $SUITE's package index ($MIRROR); the suite may have moved on: set SUITE in $0" >&2; exit 1; }
  deb=$D/debs/$(basename "$f")
  if [ ! -s "$deb" ]; then
    echo "downloading $(basename "$f")"
    curl -fsS --retry 3 -o "$deb.tmp" "$MIRROR/$f" && mv "$deb.tmp" "$deb"
  fi
  stamp=$D/root/.$(basename "$f").unpacked
  [ -e "$stamp" ] || { mkdir -p "$D/root"; dpkg -x "$deb" "$D/root"; touch "$stamp"; }
done

# The layout tchsetup takes from $LIBTORCH (an unzipped libtorch), and a
# CUDA home whose include/ holds cuda_runtime_api.h.
LT=$D/libtorch
mkdir -p "$LT/share/cmake" "$D/cuda"
ln -sfn "$D/root/usr/include" "$LT/include"
ln -sfn "$D/root/usr/lib/x86_64-linux-gnu" "$LT/lib"
ln -sfn "$D/root/usr/lib/x86_64-linux-gnu/cmake/Torch" "$LT/share/cmake/Torch"
ln -sfn "$D/root/usr/include" "$D/cuda/include"

# A tree of its own, so that the repository's build/ (for Debian's CPU
# libtorch) is left alone; copies, since tchsetup's stamp does not walk
# symbolic links.
T=$D/tree
rm -rf "$T/patches" "$T/tools"
mkdir -p "$T/tools"
cp -r "$ROOT/patches" "$T/patches"
cp -r "$ROOT/tools/tchsetup" "$T/tools/tchsetup"
log=$D/tchsetup.log
LIBTORCH=$LT CUDA_HOME=$D/cuda go -C "$ROOT/tools/tchsetup" run . -root "$T" -jobs "${JOBS:-$(nproc)}" 2>&1 | tee "$log"

echo
echo "cuda-build-check against $(grep -m1 '^libtorch ' "$log")"
fail=0
for u in mollify_cuda mollify_c10d mollify_c10d_nccl; do
  if grep -q "${u}.cpp did not compile\|${u}_stub.cpp stands in\|$u (did not compile)" "$log"; then
    echo "  $u: DID NOT COMPILE (a stand-in was used; the errors are above and in $log)"
    fail=1
  elif ! grep -q "^  $u ok" "$log"; then
    echo "  $u: not compiled (see $log)"
    fail=1
  else
    echo "  $u: compiled and linked"
  fi
done
echo "  stubbed generated functions: $(grep -c '^atg_' "$T/build/stubs.txt" || true) ($T/build/stubs.txt)"
if grep -q '^mlf_' "$T/build/stubs.txt"; then
  echo "  mollify functions stubbed:"; grep '^mlf_' "$T/build/stubs.txt" | sed 's/^/    /'
  fail=1
fi
exit $fail
