#!/usr/bin/env bash
# `make reproduce QUICK=1` (bench/reproduce.py --quick): the three published comparisons, scaled
# down, run end to end under lambda-sim with stash and fake-aws, and their results hold the shapes
# that hold on any machine: TTL 0 makes one GetParameter call per invocation, TTL 300 one per
# environment (with more than one), TTL 1 falls in between; warm fetches through stash are at
# least ten times faster than with the SDK; prefetch lowers the median init duration; the EMF
# lines count the upstream calls fake-aws counted.  Also: reproduce.json has the promised keys,
# the charts are standalone SVG, and the committed results are left alone.
source "$(dirname "$0")/lib.bash"
OUT=$BUILD/reproduce
sum_results() { find "$STASH_ROOT/bench/results" -type f -exec md5sum {} + 2>/dev/null | sort; }
before=$(sum_results)
rm -f "$OUT"/reproduce.json "$OUT"/reproduce.md "$OUT"/reproduce-*.svg

timeout 300 python3 "$STASH_ROOT/bench/reproduce.py" --build "$BUILD" --quick >"$T/run.log" 2>&1
rc=$?
[ "$rc" = 0 ] || tail -40 "$T/run.log" | sed 's/^/#   /'
expect_eq "reproduce --quick exits 0" 0 "$rc"
check "reproduce.md and reproduce.json written in BUILD/reproduce" \
  test -s "$OUT/reproduce.md" -a -s "$OUT/reproduce.json"
check "progress on the terminal: experiments, invocations, total time" \
  grep -q 'TTL under load.*invocations so far' "$T/run.log" -a
check "progress names the total time" grep -qE 'total [0-9]+ s, [0-9]+ invocations' "$T/run.log"

check "reproduce.json has exactly the promised keys" python3 - "$OUT/reproduce.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"ttl", "coldwarm", "prefetch", "published"}, set(d)
assert [r["ttl_s"] for r in d["ttl"]] == [0, 1, 300]
for r in d["ttl"]:
    assert set(r) == {"ttl_s", "invocations", "environments", "upstream_calls",
                      "emf_upstream_calls", "hit_ratio", "fetch_ms_p50", "fetch_ms_p99"}, set(r)
    assert set(r["upstream_calls"]) == {"GetParameter", "GetSecretValue"}
assert set(d["coldwarm"]) == {"with_extension", "without_extension"}
for v in d["coldwarm"].values():
    assert len(v) == 3 and all(set(p) == {"fetch_ms", "billed_ms"} for p in v), v
assert set(d["prefetch"]) == {"baseline", "no_prefetch", "prefetch"}
for v in d["prefetch"].values():
    assert set(v) == {"init_ms_mean", "init_ms_median", "duration_ms_mean"}, v
for exp in ("ttl", "coldwarm", "prefetch"):
    assert d["published"][exp]["source"] and d["published"][exp]["url"].startswith("https://")
PY

# The shapes, each read from reproduce.json here (not from the script's own verdicts).
shape() {  # DESCRIPTION PYTHON-EXPRESSION over d (reproduce.json) and t (ttl runs by TTL)
  check "$1" python3 - "$OUT/reproduce.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = {r["ttl_s"]: r for r in d["ttl"]}
gp = {k: r["upstream_calls"]["GetParameter"] for k, r in t.items()}
ok = eval(sys.argv[2])
print(json.dumps({"ttl": d["ttl"], "coldwarm": d["coldwarm"], "prefetch": d["prefetch"]}))
sys.exit(0 if ok else 1)
PY
}
shape "TTL 0: one GetParameter call per invocation" \
  'gp[0] == t[0]["invocations"] > 0'
shape "TTL 300: one GetParameter call per environment, more than one environment" \
  'gp[300] == t[300]["environments"] > 1'
shape "TTL 1: fewer calls than TTL 0's, more than TTL 300's" \
  'gp[300] < gp[1] < gp[0]'
shape "no Secrets Manager calls in the TTL runs (the function reads one parameter)" \
  'all(r["upstream_calls"]["GetSecretValue"] == 0 for r in d["ttl"])'
shape "warm fetches through stash at least ten times faster than with the SDK" \
  'all(d["coldwarm"]["with_extension"][i]["fetch_ms"] * 10 <= d["coldwarm"]["without_extension"][i]["fetch_ms"] for i in (1, 2))'
shape "prefetch lowers the median init duration (against stash without prefetch)" \
  'd["prefetch"]["prefetch"]["init_ms_median"] < d["prefetch"]["no_prefetch"]["init_ms_median"]'
shape "EMF counts equal fake-aws's in every TTL run" \
  'all(r["emf_upstream_calls"] == r["upstream_calls"] for r in d["ttl"])'
check "every stash run's EMF count agreed with fake-aws's (the report's table)" \
  bash -c "grep -q '| yes |' '$OUT/reproduce.md' && ! grep -q '| \*\*NO\*\* |' '$OUT/reproduce.md'"

for c in ttl coldwarm prefetch; do
  check "chart reproduce-$c.svg is a standalone SVG with text" python3 - "$OUT/reproduce-$c.svg" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg" and root.get("width") and root.get("viewBox"), root.attrib
assert len(root.findall(f".//{ns}rect")) > 5 and len(root.findall(f".//{ns}text")) > 10
assert not any(e.get("href") or e.get("{http://www.w3.org/1999/xlink}href") for e in root.iter())
PY
done
check "reproduce.md links the three charts" \
  bash -c "grep -c 'reproduce-\(ttl\|coldwarm\|prefetch\)\.svg' '$OUT/reproduce.md' | grep -qx 3"
# How the two counts are read and compared, on a log stream written here: a record split over two
# EMF lines (the second carries only the rest of an array) counts once, REPORT lines give their
# figures, and a differing pair is flagged (which makes the command exit 1).
check "EMF counting: split records count once, REPORT lines parsed, disagreement flagged" \
  python3 - "$STASH_ROOT/bench" "$T/streams" <<'PY'
import json, os, sys
sys.path.insert(0, sys.argv[1])
import reproduce as r
d = sys.argv[2]
os.makedirs(d)
head = {"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}, "FunctionName": "f"}
lines = [
    "START RequestId: a Version: $LATEST",
    "ttl-load: start 1000 fetch 12.500 ms",
    "REPORT RequestId: a\tDuration: 460.12 ms\tBilled Duration: 700 ms\tMemory Size: 128 MB\t"
    "Max Memory Used: 60 MB\tInit Duration: 239.50 ms\t",
    json.dumps(dict(head, CacheHits=0, CacheMisses=2, ParameterStoreCalls=1,
                    SecretsManagerCalls=1, FetchLatency=[1.0] * 100)),
    json.dumps(dict(head, FetchLatency=[2.0])),
    "ttl-load: start 1600 fetch 0.400 ms",
    "REPORT RequestId: b\tDuration: 451.00 ms\tBilled Duration: 452 ms\tMemory Size: 128 MB\t"
    "Max Memory Used: 60 MB\t",
    json.dumps(dict(head, CacheHits=1, CacheMisses=0, ParameterStoreCalls=0,
                    SecretsManagerCalls=0)),
]
open(os.path.join(d, "stream1.log"), "w").write("\n".join(lines) + "\n")
envs = r.streams(d)
assert r.emf_calls(envs) == {"GetParameter": 1, "GetSecretValue": 1}, r.emf_calls(envs)
assert r.emf_hits(envs) == (1, 2)
assert [x["init_ms"] for x in envs[0]["reports"]] == [239.5, None]
assert [x["billed_ms"] for x in envs[0]["reports"]] == [700, 452]
assert envs[0]["invokes"] == [(1000, 12.5), (1600, 0.4)]
assert r.expected_calls(envs, 1)["replay"] == 1 and r.expected_calls(envs, 0)["replay"] == 2
assert r.peak_concurrency(envs) == 1
ctx = r.Ctx.__new__(r.Ctx)
ctx.counts = []
ctx.count("same", {"GetParameter": 1, "GetSecretValue": 1, "new_connections": 1}, envs)
ctx.count("differs", {"GetParameter": 2, "GetSecretValue": 1, "new_connections": 1}, envs)
assert [c["agree"] for c in ctx.counts] == [True, False], ctx.counts
PY
expect_eq "the committed bench/results are untouched" "$before" "$(sum_results)"
finish
