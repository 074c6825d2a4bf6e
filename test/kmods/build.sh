#!/usr/bin/env bash
# Builds the project's C test modules (test/kmods/src) against Debian's current kernel ABI.
#
#   test/kmods/build.sh            # fetch kernel + headers if needed, build modules if needed
#
# Output (under the gitignored <repo>/.cache, or $KMM_TEST_CACHE):
#   kernel/KVER                         the ABI name, e.g. 6.1.0-56-amd64
#   kernel/debs/*.deb                   linux-image, linux-headers (+ common, kbuild, compiler)
#   kernel/<kver>/image/                dpkg -x of linux-image-<kver> (boot/vmlinuz, lib/modules/<kver>/…)
#   kernel/<kver>/headers/              dpkg -x of the headers and their build dependencies
#   kernel/<kver>/vmlinux               uncompressed kernel; QEMU boots it directly (PVH), faster under TCG
#   kmods/<kver>/*.ko                   the built test modules
# The last line on stdout is the kver; progress goes to stderr.
# Idempotent: every step is skipped when its result is present (module build: when the sources are unchanged).
# Concurrent callers are serialised by flock on <cache>/kmods.lock.
# Env: KMM_KVER=<abi> to pin a kernel instead of asking apt which one linux-image-amd64 depends on.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${KMM_TEST_CACHE:-$repo/.cache}
mkdir -p "$cache/kernel" "$cache/kmods"
# the physical path: the headers Makefile names it, and a worktree's .cache may be a symlink to a shared one
cache=$(cd "$cache" && pwd -P)

exec 9>"$cache/kmods.lock"
flock 9

log() { printf '[kmods %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[kmods] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg make gcc-12 xz sed; do
  command -v "$tool" >/dev/null || die "missing prerequisite '$tool' (install: gcc-12 make bc libelf1 libssl3 xz-utils)"
done

# ---------------------------------------------------------------- which kernel
dep_of() { # dep_of <package> <regex of the dependency name>
  apt-cache depends "$1" 2>/dev/null | sed -n "s/^ *Depends: \($2\)\$/\1/p" | sed -n 1p
}

kver=${KMM_KVER:-}
if [ -z "$kver" ] && [ -s "$cache/kernel/KVER" ]; then kver=$(cat "$cache/kernel/KVER"); fi
if [ -z "$kver" ]; then
  kver=$(dep_of linux-image-amd64 'linux-image-[0-9].*')
  kver=${kver#linux-image-}
  if [ -z "$kver" ]; then
    log "apt knows no linux-image-amd64; running apt-get update"
    apt-get update -qq >&2
    kver=$(dep_of linux-image-amd64 'linux-image-[0-9].*'); kver=${kver#linux-image-}
  fi
  [ -n "$kver" ] || die "cannot determine the kernel ABI that linux-image-amd64 depends on"
fi
# a pinned kernel (KMM_KVER) is not made the default of every other caller
[ -n "${KMM_KVER:-}" ] || echo "$kver" > "$cache/kernel/KVER"
kdir="$cache/kernel/$kver"
hdir="$kdir/headers/usr/src/linux-headers-$kver"

# ---------------------------------------------------------------- fetch + extract
if [ ! -f "$kdir/.extracted" ]; then
  common=$(dep_of "linux-headers-$kver" 'linux-headers-.*-common')
  kbuild=$(dep_of "linux-headers-$kver" 'linux-kbuild-.*')
  compiler=$(dep_of "linux-headers-$kver" 'linux-compiler-.*')
  [ -n "$common" ] && [ -n "$kbuild" ] && [ -n "$compiler" ] ||
    die "apt does not know the dependencies of linux-headers-$kver (got common='$common' kbuild='$kbuild' compiler='$compiler')"
  mkdir -p "$cache/kernel/debs"
  need=()
  for p in "linux-image-$kver" "linux-headers-$kver" "$common" "$kbuild" "$compiler"; do
    compgen -G "$cache/kernel/debs/${p}_*.deb" >/dev/null || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "downloading ${need[*]}"
    (cd "$cache/kernel/debs" && apt-get download -q "${need[@]}" >&2) ||
      die "apt-get download ${need[*]} failed"
  fi
  log "extracting kernel $kver"
  rm -rf "$kdir.tmp"; mkdir -p "$kdir.tmp/image" "$kdir.tmp/headers"
  dpkg -x "$(ls "$cache"/kernel/debs/linux-image-"$kver"_*.deb | head -1)" "$kdir.tmp/image"
  for p in "linux-headers-$kver" "$common" "$kbuild" "$compiler"; do
    dpkg -x "$(ls "$cache"/kernel/debs/"$p"_*.deb | head -1)" "$kdir.tmp/headers"
  done
  # The arch headers Makefile includes the common tree by an ABSOLUTE /usr/src path; we did not install
  # the package, so point it at our extracted copy.
  sed -i "s#^include /usr/src/#include $kdir/headers/usr/src/#" \
    "$kdir.tmp/headers/usr/src/linux-headers-$kver/Makefile"
  # Same for the build symlink's target, so `make -C <image>/lib/modules/<kver>/build` would work too.
  rm -rf "$kdir"; mv "$kdir.tmp" "$kdir"
  touch "$kdir/.extracted"
fi
grep -q "^include $kdir/" "$hdir/Makefile" || die "headers Makefile in $hdir does not include the extracted tree"

# Uncompressed kernel for QEMU's PVH entry: saves the emulated in-guest decompression.
if [ ! -s "$kdir/vmlinux" ]; then
  z="$kdir/image/boot/vmlinuz-$kver"
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$z" | sed -n 1p | cut -d: -f1)
  [ -n "$off" ] || die "no xz stream in $z"
  tail -c +$((off + 1)) "$z" | xz -dc --single-stream > "$kdir/vmlinux.tmp" 2>/dev/null || true
  [ -s "$kdir/vmlinux.tmp" ] || die "could not extract vmlinux from $z"
  mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
fi

# ---------------------------------------------------------------- modules
out="$cache/kmods/$kver"
srchash=$( (cd "$here/src" && cat Kbuild ./*.c && echo "$kver") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.srchash" 2>/dev/null)" != "$srchash" ]; then
  log "building test modules for $kver"
  rm -rf "$out" "$out.build"; mkdir -p "$out.build"
  cp "$here"/src/Kbuild "$here"/src/*.c "$out.build/"
  make -s -C "$hdir" M="$out.build" modules >&2 || die "module build failed"
  mkdir -p "$out"
  cp "$out.build"/*.ko "$out/"
  # Debug info triples the size and nothing reads it; a lean .ko keeps images and the initramfs small.
  strip --strip-debug "$out"/*.ko
  rm -rf "$out.build"
  echo "$srchash" > "$out/.srchash"
  for ko in "$out"/*.ko; do log "built $(basename "$ko") vermagic=$(modinfo -F vermagic "$ko")"; done
fi

echo "$kver"
