#!/usr/bin/env bash
# Installs everything kmm-worker's demo and tests need on a Debian machine, then the npm dependencies.
# Idempotent; run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(
  kmod                 # modprobe / modinfo / depmod
  docker-registry      # the real OCI registry the tests start on 127.0.0.1
  skopeo umoci podman buildah pigz   # independent image producers (podman login also writes the auth.json the credential tests read)
  stargz-snapshotter containerd   # ctr-remote converts to eStargz: an independent producer of eStargz images for the lazy-pull tests
  apache2-utils        # htpasswd for the Basic-auth registry
  openssl              # test CA and certificates
  socat                # guest-to-host forwarding for the VM
  qemu-system-x86 busybox-static   # the real-kernel VM
  debootstrap e2fsprogs            # the systemd VM's Debian root filesystem and its ext4 disk
  gcc-12 make bc libelf1 libssl3 xz-utils zstd   # building test modules against Debian's kernel headers
  cpio curl ca-certificates
  systemd              # systemd-analyze verify for the Day-1 units
  ignition             # ignition-validate for the Day-1 MachineConfig
  util-linux           # unshare: the Day-1 load test runs without a network
  buildah podman runc debootstrap   # build (scripts/build-image.sh) and run the worker image
)
command -v kubectl >/dev/null || packages+=(kubernetes-client)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
npm ci --no-audit --no-fund
