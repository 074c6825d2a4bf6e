#!/usr/bin/env bash
# Builds (once, cached) the Debian root filesystem of the systemd VM scenarios (test/vm/day1-systemd.test.ts):
# debootstrap --variant=minbase with systemd, udev and kmod, Node 24 (the `node` npm package's binary), the
# in-tree modules the guest needs for the running kernel(s), systemd-networkd with a static address, a persistent
# journal, and the control service the host drives the guest through (control.sh on ttyS1). Also a tiny
# initramfs (busybox + virtio/ext4 modules) that mounts /dev/vda and hands over to systemd.
#
#   build-rootfs.sh <kver> <kernel modules dir> <node binary> [<kver2> <modules dir 2>]
#
# Output: <cache>/day1-rootfs/<key>/{rootfs/,initrd-<kver>.cpio}; the last stdout line is that directory.
# The key hashes every input (this script, control.sh, the kernels, the node binary, the mirror), so a change of
# any of them builds a new tree; older trees are removed. kmm-worker itself is NOT in the tree: the test adds this
# checkout's build on every run (cheap). Serialised by flock on <cache>/day1-rootfs.lock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${KMM_TEST_CACHE:-$repo/.cache}
kver=$1 moddir=$2 node=$3 kver2=${4:-} moddir2=${5:-}
log() { printf '[rootfs %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[rootfs] ERROR: %s\n' "$*" >&2; exit 1; }
for tool in debootstrap mkfs.ext4 busybox modinfo depmod flock; do
  command -v "$tool" >/dev/null || die "missing prerequisite '$tool' (install: debootstrap e2fsprogs busybox-static kmod)"
done

# The Debian mirror the host's apt uses (only Debian packages and npm are reachable from here).
mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* |
  grep -E 'debian/?( |$)' | grep -v security | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//' | sed -n 1p || true)
mirror=${KMM_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}
suite=bookworm
packages=systemd,systemd-sysv,udev,kmod,iproute2

mkdir -p "$cache/day1-rootfs"
exec 9>"$cache/day1-rootfs.lock"
flock 9

key=$( { echo v2 "$mirror" "$suite" "$packages" "$kver" "$kver2"; cat "$0" "$here/control.sh";
  stat -c '%s %Y' "$node" "$moddir/modules.order"; [ -z "$moddir2" ] || stat -c '%s %Y' "$moddir2/modules.order"; } |
  sha256sum | cut -c1-16)
out=$cache/day1-rootfs/$key
if [ -f "$out/.done" ]; then echo "$out"; exit 0; fi
for old in "$cache"/day1-rootfs/*/; do [ "${old%/}" = "$out" ] || rm -rf "$old"; done
rm -rf "$out"; mkdir -p "$out"
root=$out/rootfs

log "debootstrap $suite from $mirror ($packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" > "$out/debootstrap.log" 2>&1 ||
  { tail -n 20 "$out/debootstrap.log" >&2; die "debootstrap failed (log: $out/debootstrap.log)"; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man \
  "$root"/usr/share/locale

install -m 0755 "$node" "$root/usr/bin/node"

# in-tree modules with their dependencies, in load order (dependencies first)
order=()
declare -A seen=()
add_module() { # add_module <moddir> <name>
  local name=$1 f dep
  [ -z "${seen[$name]:-}" ] || return 0
  seen[$name]=1
  f=$(find "$2/kernel" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) | head -n1)
  if [ -z "$f" ]; then grep -qE "/(${name}|${name//_/-})\.ko\$" "$2/modules.builtin" && return 0; die "no module $name in $2"; fi
  for dep in $(modinfo -F depends "$f" | tr ',' ' '); do add_module "$dep" "$2"; done
  order+=("$f")
}
boot_modules="crc32c_generic crc16 virtio_pci virtio_blk ext4"
guest_modules="$boot_modules virtio_net dummy"
install_modules() { # install_modules <kver> <moddir>
  local k=$1 d=$2 f
  order=(); seen=()
  for m in $guest_modules; do add_module "$m" "$d"; done
  mkdir -p "$root/usr/lib/modules/$k"
  cp "$d"/modules.builtin "$d"/modules.builtin.modinfo "$d"/modules.order "$root/usr/lib/modules/$k/"
  for f in "${order[@]}"; do install -D -m 0644 "$f" "$root/usr/lib/modules/$k/${f#"$d"/}"; done
  depmod -b "$root" "$k"
  # the initramfs: busybox, the modules to reach /dev/vda's ext4, and /init
  local ird=$out/initrd-$k
  rm -rf "$ird"; mkdir -p "$ird"/{bin,dev,proc,sys,newroot,mods}
  cp /bin/busybox "$ird/bin/busybox"
  for a in sh mount insmod sleep switch_root echo cat; do ln -s busybox "$ird/bin/$a"; done
  order=(); seen=()
  for m in $boot_modules; do add_module "$m" "$d"; done
  : > "$ird/mods/order"
  for f in "${order[@]}"; do cp "$f" "$ird/mods/"; basename "$f" >> "$ird/mods/order"; done
  cat > "$ird/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "initrd: insmod $m failed"; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; sleep 5; exit 1; }
umount /proc /sys; umount /dev 2>/dev/null
exec switch_root /newroot /sbin/init
INIT
  chmod 0755 "$ird/init"
  (cd "$ird" && find . | LC_ALL=C sort | busybox cpio -o -H newc -R 0:0 > "$out/initrd-$k.cpio" 2>/dev/null)
  rm -rf "$ird"
}
install_modules "$kver" "$moddir"
# the kernel the guest boots is installed as Debian installs it (its image in /boot); a second kernel's image
# waits in /var/lib/kmm-test until a test installs it (its modules are in place, as after a package unpack)
mkdir -p "$root/boot" "$root/var/lib/kmm-test"
install -m 0644 "$moddir/../../../boot/vmlinuz-$kver" "$root/boot/vmlinuz-$kver"
if [ -n "$kver2" ]; then
  install_modules "$kver2" "$moddir2"
  install -m 0644 "$moddir2/../../../boot/vmlinuz-$kver2" "$root/var/lib/kmm-test/vmlinuz-$kver2"
fi

log "configuring"
echo kmm-vm > "$root/etc/hostname"
printf '127.0.0.1 localhost kmm-vm\n' > "$root/etc/hosts"
printf '/dev/vda / ext4 defaults 0 1\n' > "$root/etc/fstab"
sed -i "s/^root:[^:]*:/root::/" "$root/etc/shadow"
echo 6b6d6d776f726b657264617931766d31 > "$root/etc/machine-id"
mkdir -p "$root/var/log/journal" "$root/etc/systemd/network" "$root/var/lib/firmware" "$root/var/cache/node-compile"
cat > "$root/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
wants=$root/etc/systemd/system/multi-user.target.wants
mkdir -p "$wants" "$root/etc/systemd/system/network-online.target.wants" "$root/etc/systemd/system/sockets.target.wants"
ln -sf /usr/lib/systemd/system/systemd-networkd.service "$wants/systemd-networkd.service"
ln -sf /usr/lib/systemd/system/systemd-networkd.socket "$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
ln -sf /usr/lib/systemd/system/systemd-networkd-wait-online.service \
  "$root/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
# nothing in this guest needs a login prompt, timers or a clock sync; they only cost boot time under emulation
for u in getty@.service serial-getty@.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer getty-static.service systemd-timesyncd.service; do ln -sf /dev/null "$root/etc/systemd/system/$u"; done
install -m 0755 "$here/control.sh" "$root/usr/local/sbin/kmm-test-control"
cat > "$root/etc/systemd/system/kmm-test-control.service" <<'UNIT'
[Unit]
Description=kmm-worker test: the host's control channel on ttyS1
After=multi-user.target kmm-day1-pull.service
[Service]
Type=simple
ExecStart=/usr/local/sbin/kmm-test-control
[Install]
WantedBy=default.target
UNIT
mkdir -p "$root/etc/systemd/system/default.target.wants"
ln -sf ../kmm-test-control.service "$root/etc/systemd/system/default.target.wants/kmm-test-control.service"
touch "$out/.done"
log "done: $out"
echo "$out"
