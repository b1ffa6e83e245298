#!/usr/bin/env bash
# Packs one Lambda layer zip, or prints the sizes and sha256 of finished ones.
#   scripts/make-layer.sh BINARY ZIP STRIP     ZIP holds extensions/stash (mode 0755), stripped
#   scripts/make-layer.sh --summary ZIP...
# The zip is reproducible: the same binary gives the same bytes (one fixed timestamp in UTC, no
# extra attributes such as uid/gid or extended times, a single entry).  A layer over 2 MB fails.
set -euo pipefail
MAX_BYTES=$((2 * 1024 * 1024))
if [ "$1" = --summary ]; then
  shift
  for z in "$@"; do
    printf '%-36s %9d bytes  sha256 %s\n' "$z" "$(stat -c %s "$z")" "$(sha256sum "$z" | cut -d' ' -f1)"
  done
  exit 0
fi
bin=$1 zip=$2 strip=$3
command -v zip >/dev/null || { echo "make-layer: zip is missing (apt-get install zip)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/extensions"
"$strip" -o "$stage/extensions/stash" "$bin"
chmod 0755 "$stage/extensions/stash"
touch -h -d '1980-01-01 00:00:00 UTC' "$stage/extensions/stash" "$stage/extensions"
mkdir -p "$(dirname "$zip")"
zip=$(cd "$(dirname "$zip")" && pwd)/$(basename "$zip")
rm -f "$zip" "$zip.tmp"
(cd "$stage" && TZ=UTC zip -q -X -9 -D "$zip.tmp" extensions/stash)
mv "$zip.tmp" "$zip"
size=$(stat -c %s "$zip")
if [ "$size" -gt "$MAX_BYTES" ]; then
  echo "make-layer: $zip is $size bytes, over the 2 MB budget" >&2
  rm -f "$zip"
  exit 1
fi
