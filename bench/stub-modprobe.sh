#!/bin/sh
# The bench's stub modprobe (row d): what a cache-hit `kmod load` asks of modprobe, at the cost of a shell, so
# that the row measures the agent and not a Node-based stub. `modprobe [-r] -v -d DIR NAME`: marks NAME live
# (or gone) under $STUB_MODPROBE_HOST_ROOT/sys/module, with the srcversion modinfo reads from DIR.
set -eu
remove=0 dir=/
while [ $# -gt 1 ]; do
  case "$1" in
    -r) remove=1 ;;
    -d) dir=$2; shift ;;
  esac
  shift
done
name=$(printf %s "$1" | tr - _)
sys="$STUB_MODPROBE_HOST_ROOT/sys/module/$name"
if [ "$remove" = 1 ]; then rm -rf "$sys"; exit 0; fi
kver=$(cat "$STUB_MODPROBE_HOST_ROOT/proc/sys/kernel/osrelease")
ko=$(find "$dir/lib/modules/$kver" -name "$1.ko" -o -name "$name.ko" | head -n 1)
mkdir -p "$sys/holders" "$sys/parameters"
modinfo -F srcversion "$ko" > "$sys/srcversion"
echo 0 > "$sys/refcnt"
echo live > "$sys/initstate"
