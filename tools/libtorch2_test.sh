#!/bin/bash
# make test-libtorch2: the whole `make test`, on a clone of HEAD, against
# libtorch 2.x instead of the machine's 1.13: Debian trixie's libtorch-dev
# (PyTorch 2.6, CPU) in a trixie chroot made with debootstrap. The GPU
# machine's PyTorch is 2.x too; this runs the 2.x code paths of the patch
# series (c10d's Backend API, TCPStore's libuv default, the ops that 1.13
# lacks) on the CPU, without a GPU session. Needs root (chroot, mount).
#
# The chroot lives outside the repository (MOLLIFY_TRIXIE, default
# /var/tmp/mollify-trixie), so `make clean` never walks into its bind
# mounts; those (GOROOT read-only, the Go module cache) are undone on exit.
# Go modules come from this machine's cache (GOPROXY=off there): run
# `make test` here first. First run about 3 minutes to set up, then about
# 10 on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
R=${MOLLIFY_TRIXIE:-/var/tmp/mollify-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "test-libtorch2: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap

if [ ! -x "$R/usr/bin/make" ]; then
  echo "debootstrap trixie into $R"
  debootstrap --variant=minbase --include=ca-certificates,build-essential,git,make,xz-utils \
    trixie "$R" "$MIRROR" >"$R.debootstrap.log" 2>&1 || { tail -20 "$R.debootstrap.log"; exit 1; }
fi
echo "deb $MIRROR trixie main" >"$R/etc/apt/sources.list"
cp /etc/resolv.conf "$R/etc/resolv.conf"

GOROOT=$(go env GOROOT)
MODCACHE=$(go env GOMODCACHE)
mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done
}
trap cleanup EXIT
bind() { # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
bind /proc "$R/proc"
bind /dev "$R/dev"
bind /sys "$R/sys"
bind "$GOROOT" "$R/opt/go" ro
bind "$MODCACHE" "$R/opt/gomodcache"

in_chroot() {
  chroot "$R" env -i PATH=/opt/go/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    GOMODCACHE=/opt/gomodcache GOPROXY=off GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
    DEBIAN_FRONTEND=noninteractive "$@"
}
if ! in_chroot dpkg -s libtorch-dev >/dev/null 2>&1 || ! in_chroot dpkg -s libgloo-dev >/dev/null 2>&1; then
  in_chroot apt-get update -q >/dev/null
  in_chroot apt-get install -y -q --no-install-recommends libtorch-dev libgloo-dev >/dev/null
fi
echo "libtorch in the chroot: $(in_chroot dpkg-query -W -f='${Version}' libtorch-dev)"

mkdir -p "$ROOT/build"
rm -rf "$R/work/repo"
mkdir -p "$R/work"
git clone -q "$ROOT" "$R/work/repo"
echo "testing $(git -C "$R/work/repo" log --oneline -1)"
start=$(date +%s)
set +e
in_chroot bash -c 'cd /work/repo && make test' 2>&1 | tee "$ROOT/build/libtorch2_test.log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "test-libtorch2: make test against $(grep -m1 '^libtorch ' "$ROOT/build/libtorch2_test.log" || echo 'libtorch ?') exited $rc after $(( $(date +%s) - start )) s (log: build/libtorch2_test.log)"
grep -E '^(FAIL|--- FAIL)' "$ROOT/build/libtorch2_test.log" || true
exit "$rc"
