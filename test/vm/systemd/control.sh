#!/bin/bash
# The host's control channel in the systemd test guest (kmm-test-control.service), the same protocol as
# test/vm/guest-init.sh: the host sends "<id> <base64 script> <id>" on ttyS1, the guest answers with
# "@@OUT <id>", base64 stdout, "@@ERR <id>", base64 stderr, "@@RC <id> <code>". It announces itself with
# "@@READY <uptime seconds> <boot number>" (boots counted in the persistent journal), so the host can tell a
# boot after a reboot from the first one.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
export NODE_COMPILE_CACHE=/var/cache/node-compile
ctl=/dev/ttyS1
stty -F $ctl raw -echo
exec 3<$ctl 4>$ctl
boots=$(journalctl --list-boots -q 2>/dev/null | wc -l)
echo "@@READY $(cut -d' ' -f1 /proc/uptime) $boots" >&4
while read -r line <&3; do
  [ -n "$line" ] || continue
  id=${line%% *} last=${line##* }
  case "$line" in
    "$id "?*" $id") ;;
    *) echo "@@GARBLED $last" >&4; continue ;;
  esac
  b64=${line#* } b64=${b64% *}
  printf '%s' "$b64" | base64 -d > /run/.kmmvm-cmd
  (cd / && bash /run/.kmmvm-cmd) </dev/null >/run/.kmmvm-out 2>/run/.kmmvm-err
  rc=$?
  { echo "@@OUT $id"; base64 < /run/.kmmvm-out; echo "@@ERR $id"; base64 < /run/.kmmvm-err; echo "@@RC $id $rc"; } >&4
done
