#!/usr/bin/env bash
# Refuses a binary that would not start on every Lambda image stash supports.
#   scripts/check-static.sh BINARY
# The lean build is meant to need no shared library (no PT_INTERP, no DT_NEEDED).  If one ever
# links dynamically, the floor is glibc 2.26 (Amazon Linux 2): any versioned symbol newer than
# GLIBC_2.26 is named and refused, as is any library other than glibc's own.
set -euo pipefail
bin=$1
fail=0
needed=$(readelf -d "$bin" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
if [ -z "$needed" ] && [ -z "$interp" ]; then
  exit 0
fi
for lib in $needed; do
  case $lib in
    libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-*.so.*) ;;
    *) echo "check-static: $bin needs $lib, which Lambda's images do not have" >&2; fail=1 ;;
  esac
done
# Versioned glibc symbols this binary asks for, newer than 2.26.
while read -r sym ver; do
  echo "check-static: $bin needs $sym@$ver, newer than Amazon Linux 2's glibc 2.26" >&2
  fail=1
done < <(objdump -T "$bin" | awk '$0 ~ /GLIBC_[0-9]/ { for (i = 1; i <= NF; i++) if ($i ~ /^\(?GLIBC_[0-9.]+\)?$/) { v = $i; gsub(/[()]/, "", v); print $NF, v } }' |
  awk '{ split(substr($2, 7), p, "."); if (p[1] > 2 || (p[1] == 2 && p[2] > 26)) print }' | sort -u)
[ "$fail" = 0 ] || exit 1
echo "check-static: $bin is dynamic (interpreter ${interp:-none}) but needs nothing past GLIBC_2.26" >&2
