#!/usr/bin/env bash
# Makes a seed corpus for fuzz_telemetry_batch from tests/data/telemetry-samples: whole
# batches as they are, single events wrapped in [ ], record-only fixtures in an envelope.
#   tests/fuzz/seed_telemetry_batch.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: $0 OUTDIR}
ref=tests/data
[ -d "$ref/telemetry-samples" ] || { echo "seed: tests/data/telemetry-samples not found" >&2; exit 1; }
mkdir -p "$out"
/usr/bin/python3 - "$ref/telemetry-samples" "$out" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
n = 0
for name in sorted(os.listdir(src)):
    if not name.endswith(".json"):
        continue
    text = open(os.path.join(src, name)).read()
    doc = json.loads(text)
    if isinstance(doc, list):
        body = text
    elif name.startswith("record-only."):
        t = ".".join(name[len("record-only."):].split(".")[:2])
        body = json.dumps([{"time": "2022-04-11T15:01:28.543Z", "type": t, "record": doc}])
    else:
        body = "[" + text + "]"
    with open(os.path.join(out, name), "w") as f:
        f.write(body)
    n += 1
print("seed: %d files in %s" % (n, out))
PY
