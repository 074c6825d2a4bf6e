#!/usr/bin/env bash
# A dry-run `kmod load` of a complete config, with nothing to set up: a temporary host root (running kernel,
# an in-tree module loaded, firmware_class.path) and a KMM init-container style kmods dir holding the project's
# own test modules (built by test/kmods/build.sh against Debian's kernel). Prints the plan; touches nothing.
#
#   examples/dry-run-demo.sh            # after `npm ci`
#   examples/dry-run-demo.sh --real     # really "load" into the temp host root with the recording modprobe
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"   # Node 24 from the `node` devDependency
[ -f dist/cli.js ] || npm run build >/dev/null

kver=$(bash test/kmods/build.sh | tail -1)
kmods=.cache/kmods/$kver
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
host=$work/host shared=$work/shared

# the node: running kernel, an in-tree twin loaded, the kernel's firmware search path
mkdir -p "$host/proc/sys/kernel" "$host/sys/module/firmware_class/parameters" "$host/sys/module/dummy/holders"
echo "$kver" > "$host/proc/sys/kernel/osrelease"
echo "" > "$host/sys/module/firmware_class/parameters/path"
echo live > "$host/sys/module/dummy/initstate"; echo 0 > "$host/sys/module/dummy/refcnt"

# what a KMM init container leaves: <shared>/opt/lib/modules/<kver> and the image's /firmware
mkdir -p "$shared/opt/lib/modules/$kver/extra" "$shared/firmware/kmm"
cp "$kmods"/{kmm_user,kmm_lib,kmm_fw,dummy}.ko "$shared/opt/lib/modules/$kver/extra/"
depmod -b "$shared/opt" "$kver" 2>/dev/null
echo "demo firmware" > "$shared/firmware/kmm/demo.bin"

cat > "$work/config.yaml" <<YAML
kernelVersion: $kver
containerImage: registry.example.com/acme/kmm-demo:$kver
inTreeModulesToRemove: [dummy]
modprobe:
  moduleName: kmm_user
  modulesLoadingOrder: [kmm_user, kmm_lib, kmm_fw]
  parameters: []
  firmwarePath: /firmware
YAML

args=(--host-root "$host" --shared-dir "$shared" --log-format pretty)
if [ "${1:-}" = --real ]; then
  export RECORDING_MODPROBE_HOST_ROOT=$host RECORDING_MODPROBE_LOG=$work/modprobe.log
  args+=(--modprobe "$PWD/test/helpers/recording-modprobe.mjs")
else
  args+=(--dry-run)
fi
echo "\$ kmm-worker ${args[*]} kmod load config.yaml --firmware-path /var/lib/firmware" >&2
node bin/kmm-worker.js "${args[@]}" kmod load "$work/config.yaml" --firmware-path /var/lib/firmware
if [ "${1:-}" = --real ]; then
  echo "--- modprobe calls:"; cat "$work/modprobe.log"
  echo "--- live modules:"; for m in "$host"/sys/module/*/initstate; do echo "$(basename "$(dirname "$m")") $(cat "$m")"; done
  echo "--- host firmware:"; (cd "$host/var/lib/firmware" && find . -type f | sort)
fi
