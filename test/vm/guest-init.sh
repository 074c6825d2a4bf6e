#!/bin/sh
# PID 1 of the kmm-worker test guest. The kernel console (ttyS0) carries the kernel's own messages; the second
# serial port (ttyS1) is a control channel: the host sends one line "<id> <base64 shell script> <id>", the guest
# runs it and answers with its stdout, stderr (base64) and exit code, framed by "@@OUT/@@ERR/@@RC <id>" lines.
#
# Debian's busybox-static ash prefers its own applets over $PATH, so a bare `modprobe` in a script would be
# busybox's; kmod's tools are called as /usr/sbin/<tool>. Programs started by kmm-worker (execa, no shell) find
# kmod's modprobe on PATH: the initramfs has no busybox modprobe link.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
# V8 code cache across node starts: each start of kmm-worker after the first skips most compiling, which is
# most of its start-up cost under TCG emulation.
export NODE_COMPILE_CACHE=/var/cache/node-compile
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /run /tmp /var/lib/firmware
hostname kmm-vm
ip link set lo up

ctl=/dev/ttyS1
stty -F $ctl raw -echo
exec 3<$ctl 4>$ctl

if grep -q 'kmmvm.net=1' /proc/cmdline; then
  /usr/sbin/modprobe virtio_pci && /usr/sbin/modprobe virtio_net || echo "@@LOG virtio_net failed to load" >&4
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 ||
    echo "@@LOG eth0 setup failed" >&4
fi

# The control loop runs in a child of PID 1, never in PID 1 itself. PID 1 adopts every orphan (busybox
# `timeout` leaves its watcher behind; a daemon's children outlive it), and each orphan's exit sends PID 1 a
# SIGCHLD. Busybox's `read` builtin, interrupted by a signal in the middle of a line, starts over and drops the
# bytes it had already read, which cost a command line and hung the test. The loop's own children are all
# waited for before the next `read`, so no signal reaches it there.
serve() {
  echo "@@READY $(cut -d' ' -f1 /proc/uptime)" >&4
  while read -r line <&3; do
    [ -n "$line" ] || continue
    # "<id> <base64 script> <id>": a line that lost its start no longer has that shape
    id=${line%% *} last=${line##* }
    case "$line" in
      "$id "?*" $id") ;;
      *) echo "@@GARBLED $last" >&4; continue ;;
    esac
    b64=${line#* } b64=${b64% *}
    printf '%s' "$b64" | base64 -d > /tmp/.kmmvm-cmd
    (cd / && sh /tmp/.kmmvm-cmd) </dev/null >/tmp/.kmmvm-out 2>/tmp/.kmmvm-err
    rc=$?
    { echo "@@OUT $id"; base64 < /tmp/.kmmvm-out; echo "@@ERR $id"; base64 < /tmp/.kmmvm-err; echo "@@RC $id $rc"; } >&4
  done
}
serve &
serve_pid=$!
# reaps the orphans while the loop lives; when the host closes the channel, the loop ends and so does the guest
while kill -0 $serve_pid 2>/dev/null; do wait $serve_pid; done
poweroff -f
