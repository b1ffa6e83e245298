#!/usr/bin/env bash
# The benchmark harness keeps working: `bench/run.sh BUILD --quick` (what `make bench QUICK=1`
# runs) finishes in about half a minute and every section of bench.json has numbers, every target
# a measured value.  Values are not judged here (a quick run is far too short for that, and the
# machine is shared); that is what the full `make bench` is for.
source "$(dirname "$0")/lib.bash"
OUT=$T/quick
sum_results() { find "$STASH_ROOT/bench/results" -type f -exec md5sum {} + 2>/dev/null | sort; }
before=$(sum_results)

BENCH_OUT=$OUT timeout 300 "$STASH_ROOT/bench/run.sh" "$BUILD" --quick >"$T/bench.log" 2>&1
rc=$?
[ "$rc" = 0 ] || tail -40 "$T/bench.log" | sed 's/^/#   /'
expect_eq "quick bench exits 0" 0 "$rc"
check "bench.json and bench.md written" test -s "$OUT/bench.json" -a -s "$OUT/bench.md"

for s in hit_latency peers throughput miss_path footprint scaling lambda refresh_ahead; do
  check "section $s produced numbers" python3 - "$OUT/bench.json" "$s" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
sec = doc["sections"][sys.argv[2]]
assert sec["status"] == "ok", f"status {sec['status']}: {sec['reason']}"
assert sec["results"], "no results"
for name, metrics in sec["results"].items():
    assert metrics, f"{name}: no metrics"
    for k, v in metrics.items():
        if not isinstance(v, dict):
            continue
        assert math.isfinite(v["median"]), f"{name}.{k} is not a number"
PY
done

check "bench.md links the published comparisons' reproduction and has no seed section" \
  bash -c "grep -q '(reproduce.md)' '$OUT/bench.md' && ! grep -qi '^## seed' '$OUT/bench.md'"

check "every target has a measured value" python3 - "$OUT/bench.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
missing = [t["id"] for t in doc["targets"] if t["status"] not in ("met", "missed")]
assert not missing, f"not measured: {missing}"
assert doc["quick"] is True and doc["machine"]["cores"] >= 1
PY
check "bench.md lists every target" bash -c "[ \$(grep -c '^| .* | .* | [<>]= ' '$OUT/bench.md') -ge 10 ]"

# The shipped build against the system build (`make` builds both under DEPS=lean): every figure
# measured for both, in the same rounds.  Under DEPS=system there is nothing to compare.
if [ "${STASH_DEPS:-lean}" = lean ]; then
  check "every figure of the shipped build against the system build is measured" \
    python3 - "$OUT/bench.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["vs_system"]
assert {t["id"] for t in rows} >= {"rss_idle", "rss_1000x4k", "exec_to_first", "faults_to_first",
                                   "throughput_c1", "throughput_c8", "throughput_c64",
                                   "hit_p50", "hit_p99"}, [t["id"] for t in rows]
for t in rows:
    assert t["status"] in ("met", "missed"), t
    assert t["shipped"]["median"] > 0 and t["system"]["median"] > 0, t
    assert t["ratio"]["n"] >= 1, t
res = doc["sections"]["footprint"]["results"]
assert res["binary"]["static"]["median"] == 1 and res["binary_system"]["static"]["median"] == 0
PY
  # The throughput and latency verdicts come from the paired section (bench/bench_ab.c): both
  # builds loaded in turns within each round, every request answered.
  check "the paired section measured both builds at 1, 8 and 64 connections" \
    python3 - "$OUT/bench.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
sec = doc["sections"]["paired"]
assert sec["status"] == "ok", sec
res = sec["results"]
for c in (1, 8, 64):
    s, y = res[f"ab_c{c}"], res[f"ab_c{c}_system"]
    for r in (s, y):
        assert r["requests"]["median"] > 0 and r["errors"]["median"] == 0, (c, r)
        assert 0 < r["p50_us"]["median"] <= r["p99_us"]["median"], (c, r)
    assert s["groups"]["median"] >= 10, s
    lo, mid, hi = (s[k]["median"] for k in ("group_ratio_lo95", "group_ratio",
                                             "group_ratio_hi95"))
    assert 0 < lo <= mid <= hi, s
rows = {t["id"]: t for t in doc["vs_system"]}
for tid in ("throughput_c1", "throughput_c8", "throughput_c64", "hit_p50", "hit_p99"):
    assert "(paired)" in rows[tid]["what"], rows[tid]
PY
  check "bench.md shows the shipped build beside the system build" \
    bash -c "[ \$(grep -c '^| .* | shipped/system ' '$OUT/bench.md') -ge 5 ]"
else
  check "under DEPS=system no figure has a system value and no ratio is measured" \
    python3 - "$OUT/bench.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["sections"]["paired"]["status"] == "skipped", doc["sections"]["paired"]
rows = doc["vs_system"]
assert rows and not any("system" in t or "ratio" in t for t in rows), rows
assert all(t["status"] == "not measured" for t in rows if t["goal"].startswith("shipped/")), rows
PY
fi
expect_eq "the quick run left the committed results alone" "$before" "$(sum_results)"
finish
