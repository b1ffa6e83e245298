#!/usr/bin/env python3
"""bench/report.py: turns bench/run.sh's raw measurements into bench.json and bench.md.

  report.py --raw RAW.jsonl --out DIR [--quick]   aggregate, check targets, write, print summary
  report.py --parse-wrk FILE                      one wrk --latency output as a JSON object

Raw lines: {"section","name","metrics":{...numbers}} (one per repeat) and
{"section","status","reason"} (one per section).  Every metric is reported as the median over
its repeats with min and max; every comparison is a ratio of two things measured in the same
run, taken per repeat (the i-th stash run against the i-th baseline run) and then its median.
Each target is reported met or missed, and by how much.  The shipped build is also set
against the system build (runs named "..._system", measured in the same rounds, the two back to
back), each of those figures met or missed too, and by how much (throughput and latency from the
"paired" section, where the two take turns every 10 ms under one client).  In --quick mode the
exit status says whether every section produced numbers (values are not judged)."""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

SECTIONS = [
    ("hit_latency", "Hit latency (kept-alive loopback connection)",
     "A cached secret read back to back over one kept-alive connection. `stash` and `floor` are "
     "timed by the same raw-socket C client (bench/bench_hit.c); the floor is a bare "
     "libmicrohttpd responder (bench/floor.c) answering every GET with the bytes of stash's own "
     "answer, measured in each libmicrohttpd mode (`floor_epoll`: one epoll thread; "
     "`floor_thread`: a thread per connection, stash's mode before its epoll pool; `floor_pool`: "
     "two epoll threads, stash's mode); `floor` is the best mode of each repeat. `stash_system` "
     "is the system build (Debian's shared libraries), measured in each round right before or "
     "after `stash` (the shipped build), their order alternating. `node_fetch_*` is Node's "
     "built-in "
     "fetch, as functions call it (against stash and against `floor_thread`, shuffled read by "
     "read in one process)."),
    ("peers", "Peers on the same read (same Node process)",
     "Powertools for AWS Lambda Parameters (`SecretsProvider.get`, maxAge 300 s: in-process "
     "cache hits) and a direct AWS SDK v3 `GetSecretValue` to fake-aws (no cache), in the same "
     "Node process as the fetch above, shuffled read by read with fetch against stash "
     "(`node_fetch_stash_mixed`: the same fetch, next to the SDK's traffic)."),
    ("throughput", "Throughput (wrk, hot key)",
     "wrk against one cached key with 1, 8 and 64 connections (1 or 2 threads), stash vs the "
     "floor in each libmicrohttpd mode; `floor_c<N>` is the best mode of each repeat. "
     "Requests per second, and wrk's own p50/p99. `stash_c<N>_system` is the system build, "
     "run right before or after `stash_c<N>` in each round (order alternating). `cost_c8` "
     "(`_system`): what the stash process spends per request while 8 callers loop on the hot "
     "key, counted by perf (CPU time in us, context switches, page faults, futex, mmap, munmap "
     "and madvise calls); `profile_c8`: where its CPU goes, by symbol group (allocator, locks, "
     "memcpy/memset, kernel, the rest; top symbols in profile-c8*.txt)."),
    ("paired", "The shipped build against the system build, under the same load at once",
     "One client (bench/bench_ab.c) holds C kept-alive connections to each build and loads one "
     "build at a time, switching every 10 ms (AB_SLICE_MS) in a balanced order (A B B A, "
     "B A A B, ...), so whatever else the shared machine does falls on both alike; which build "
     "is A alternates by round. With 8 and 64 connections, on a machine with two CPUs or more "
     "and taskset, both builds are started on CPU 0 and the client runs on CPU 1 (`pinned`: "
     "1), so the figure is what a build serves on one CPU and the scheduler's sharing of the "
     "CPUs between client and server cannot drift between rounds; the one-connection rounds "
     "(more of them: the builds are closest there) run first, on builds that were never "
     "pinned. Each connection is "
     "replaced every 500 ms (kept alive for thousands of requests; connecting is not timed), so "
     "a round sees many of the random ways libmicrohttpd's two threads split the connections "
     "between them. Run one after the other (the wrk runs above), the two builds see different "
     "moments of the machine, and single rounds differ by more than the builds do. `ab_c<N>` "
     "is the shipped build with N connections, `ab_c<N>_system` the system build in the same "
     "rounds: requests per second while it had the load, and the p50/p99 of its answers. "
     "`group_ratio` is the median over the round's groups of four slices of the requests "
     "served, shipped/system, with its 95 % interval (`group_ratio_lo95`, `_hi95`); "
     "`empty_groups`: groups in which one build served nothing. The throughput and latency "
     "verdicts of the table at the top are the medians of the per-round ratios of `rps`, "
     "`p50_us` and `p99_us` here."),
    ("miss_path", "Miss path",
     "stash with SECRETS_MANAGER_TTL=0 (every read goes upstream) against the direct call: the "
     "same GetSecretValue signed once by botocore and replayed by the same C client over one "
     "kept-alive connection to fake-aws (no client-library cost at all). The difference is what "
     "stash adds to a miss: its local hop, routing, SigV4 signing, libcurl and JSON reshaping."),
    ("footprint", "Footprint",
     "Peak RSS (VmHWM) of the stash process idle (and its anonymous and file-backed parts: "
     "the file part is mostly shared libraries) and after caching 1000 secrets of 4 KB, with the "
     "floor's idle RSS for scale, and the resident set split by what backs it (each shared "
     "library, the binary, heap, anonymous maps) from /proc/PID/smaps; stripped binary size; time from fork+exec to the first answer "
     "(a request without the token: routed, checked, answered 401, nothing upstream) and to the "
     "first 200 for a secret (a miss, so one fake-aws call on a new connection is included); and, "
     "for scale, the median time a process linked against the same shared libraries takes "
     "from exec to exit doing nothing (`exec_to_exit_same_libs_ms`: the dynamic loader's share). "
     "Counted rather than timed, so the load of the machine leaves them alone: stash's page "
     "faults and peak RSS when its first answer arrives (`faults_to_first`, `hwm_at_first_kb`); "
     "the resident set and faults of a process linked like stash as main() begins "
     "(`same_libs_rss_kb`, `same_libs_minflt`: bench/floor --loaded) and after "
     "curl_global_init (`same_libs_curl_init_*`); the instructions from exec to one answer by "
     "part, under callgrind (`startup_instructions`); and, for reading the times, what one page "
     "fault costs on this VM during the run (`page_fault_us`). `cached_1000x4k_anon_kb` and "
     "`answer_bytes` (one cached answer) give the cache's own memory per value. Every "
     "figure is taken for the shipped build and, under names ending in `_system`, for the "
     "system build, each round measuring both (order alternating); the `same_libs_*` figures "
     "(a process linked against the system's libraries) go with the dynamically linked build. "
     "`binary`: sizes, stripped and not, `static` (1: no program interpreter), `pie` (1: "
     "relocated at every start), and the layer zips when `make layer` has built them."),
    ("scaling", "Scaling",
     "Hit latency and RSS with 10 to 1000 cached keys (reads round-robin over the keys); hit "
     "latency and requests/s with 1 to 64 concurrent callers (one kept-alive connection each, "
     "all from one client process on the same 2 cores), stash and the floor (pool mode)."),
    ("refresh_ahead", "Refresh-ahead: a steady key across TTL boundaries",
     "One secret (TTL 2 s) read by 4 callers, each every 40 ms on its own kept-alive connection "
     "(bench/steady_reader.py, Python), for 5 TTLs per run; fake-aws adds 50 ms to every call. "
     "`ahead_on` is stash with STASH_REFRESH_AHEAD=1, `ahead_off` with 0, run back to back in each "
     "round (order alternating). Answer times in us (p50, p99, p999, max), as the Python reader "
     "sees them; `slow`: reads of 25 ms or more, i.e. reads that waited for upstream. Without "
     "refresh-ahead each caller waits once per expiry (1 read in 50, so p99 is a wait); with it "
     "the value is refreshed before it expires."),
    ("lambda", "extensionOverhead in lambda-sim",
     "The load-test function (work_ms 1) under lambda-sim, invoked one at a time with a 2 ms "
     "pause (at most two environments), with stash as its extension: `extensionOverhead` "
     "per invoke from the platform.report / REPORT lines (time between the runtime's response "
     "and stash's next `next`, billed to the user). `invokes_refused`: invokes answered 429 "
     "because every environment was busy (lambda-sim's --max-envs), not counted."),
]

# (id, description, section, how to compute from the aggregated results, op, target)
# value functions get the per-section results dict and return (median, min, max) or None.


def _ratio(res, a, b, metric):
    """Per-repeat ratio a/b of one metric; (median, min, max) or None."""
    xs = res.get(a, {}).get("_runs", {}).get(metric)
    ys = res.get(b, {}).get("_runs", {}).get(metric)
    if not xs or not ys:
        return None
    rs = [x / y for x, y in zip(xs, ys) if y]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None


def _diff(res, a, b, metric, scale=1.0):
    xs = res.get(a, {}).get("_runs", {}).get(metric)
    ys = res.get(b, {}).get("_runs", {}).get(metric)
    if not xs or not ys:
        return None
    ds = [(x - y) * scale for x, y in zip(xs, ys)]
    return (statistics.median(ds), min(ds), max(ds))


def _val(res, name, metric, scale=1.0):
    xs = res.get(name, {}).get("_runs", {}).get(metric)
    if not xs:
        return None
    xs = [x * scale for x in xs]
    return (statistics.median(xs), min(xs), max(xs))


TARGETS = [
    ("hit_p50_vs_floor", "stash hit p50 / floor p50", "hit_latency",
     lambda r: _ratio(r, "stash", "floor", "p50_us"), "<=", 1.5, "x"),
    ("hit_p99_vs_floor", "stash hit p99 / floor p99", "hit_latency",
     lambda r: _ratio(r, "stash", "floor", "p99_us"), "<=", 4.0, "x"),
    ("node_fetch_vs_floor", "Node fetch p50: stash / floor", "hit_latency",
     lambda r: _ratio(r, "node_fetch_stash", "node_fetch_floor", "p50_us"), "<=", 1.10, "x"),
    ("throughput_c8", "wrk 8 connections: stash / floor req/s", "throughput",
     lambda r: _ratio(r, "stash_c8", "floor_c8", "rps"), ">=", 0.70, "x"),
    ("throughput_c64", "wrk 64 connections: stash / floor req/s", "throughput",
     lambda r: _ratio(r, "stash_c64", "floor_c64", "rps"), ">=", 0.70, "x"),
    ("rss_idle", "peak RSS idle", "footprint",
     lambda r: _val(r, "rss", "idle_kb", 1 / 1024), "<=", 4.0, "MB"),
    ("rss_1000x4k", "peak RSS with 1000 x 4 KB cached", "footprint",
     lambda r: _val(r, "rss", "cached_1000x4k_kb", 1 / 1024), "<=", 12.0, "MB"),
    ("exec_to_first", "exec to first request served", "footprint",
     lambda r: _val(r, "exec_first", "exec_to_first_ms"), "<=", 5.0, "ms"),
    # Refresh-ahead must not make a steady key's tail worse; the figure shows by how much it is
    # better (without it, p99 is a read that waited for upstream).
    ("refresh_ahead_p99", "steady key across TTL boundaries: p99 refresh-ahead on / off",
     "refresh_ahead", lambda r: _ratio(r, "ahead_on", "ahead_off", "p99_us"), "<=", 1.0, "x"),
    ("extension_overhead", "extensionOverhead per invoke (p50)", "lambda",
     lambda r: _val(r, "stash", "overhead_p50_ms"), "<=", 1.0, "ms"),
    ("miss_overhead", "miss: stash p50 - direct call p50", "miss_path",
     lambda r: _diff(r, "stash_miss", "direct", "p50_us", 1 / 1000), "<=", 0.5, "ms"),
]


# The shipped build against the system build, both measured in the same
# rounds.  Absolute figures: (id, what, section, run, metric, scale, unit, op, goal); the system
# build's value is shown beside the shipped one's.  Ratios: (id, what, section, run, metric,
# unit, better): "no worse than the system build", judged on the per-round ratios
# shipped/system: met unless the 95 % interval of their median lies wholly on the worse side of
# 1 (then the shipped build is worse beyond the measurement's noise); a median on the worse side
# with an interval that holds 1 is reported as "no difference measurable", with the interval.
VS_SYSTEM_ABS = [
    ("rss_idle", "peak RSS idle (VmHWM)", "footprint", "rss", "idle_kb", 1 / 1024, "MB", "<=",
     4.0),
    ("rss_1000x4k", "peak RSS with 1000 x 4 KB cached", "footprint", "rss", "cached_1000x4k_kb",
     1 / 1024, "MB", "<=", 12.0),
    ("exec_to_first", "exec to first answer", "footprint", "exec_first", "exec_to_first_ms", 1.0,
     "ms", "<=", 5.0),
    ("faults_to_first", "page faults to first answer", "footprint", "exec_first",
     "faults_to_first", 1.0, "faults", "<=", 150),
]
VS_SYSTEM_RATIO = [
    ("throughput_c1", "req/s, 1 connection (paired)", "paired", "ab_c1", "rps", "req/s",
     "higher"),
    ("throughput_c8", "req/s, 8 connections (paired)", "paired", "ab_c8", "rps", "req/s",
     "higher"),
    ("throughput_c64", "req/s, 64 connections (paired)", "paired", "ab_c64", "rps", "req/s",
     "higher"),
    ("hit_p50", "hit latency p50, one kept-alive connection (paired)", "paired", "ab_c1",
     "p50_us", "us", "lower"),
    ("hit_p99", "hit latency p99, one kept-alive connection (paired)", "paired", "ab_c1",
     "p99_us", "us", "lower"),
]


def median_interval(xs):
    """A distribution-free 95 % interval for the median of xs: the order statistics at ranks
    n/2 -+ 0.98 sqrt(n) (the normal approximation of the binomial), the same rank from each
    end; for a handful of values it is their whole range."""
    v = sorted(xs)
    n = len(v)
    j = max(0, int(n / 2 - 0.98 * n ** 0.5) - 1)
    return v[j], v[n - 1 - j]


def _stat(xs):
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3), "n": len(xs)}


def vs_system(sections):
    """Each figure: the shipped build, the system build, the goal, met or missed and by
    how much.  A figure whose runs are missing is "not measured"."""
    out = []
    for tid, what, sec, run, metric, scale, unit, op, goal in VS_SYSTEM_ABS:
        res = sections.get(sec, {}).get("results", {})
        xs = res.get(run, {}).get("_runs", {}).get(metric)
        ys = res.get(run + "_system", {}).get("_runs", {}).get(metric)
        t = {"id": tid, "what": what, "unit": unit, "goal": f"{op} {fmt(goal)} {unit}"}
        if not xs:
            t["status"] = "not measured"
            out.append(t)
            continue
        t["shipped"] = _stat([x * scale for x in xs])
        if ys:
            t["system"] = _stat([y * scale for y in ys])
            rs = [x / y for x, y in zip(xs, ys) if y]
            if rs:
                t["ratio"] = _stat(rs)
        med = t["shipped"]["median"]
        t["met"] = med <= goal if op == "<=" else med >= goal
        t["status"] = "met" if t["met"] else "missed"
        gap = abs(med - goal)
        t["by"] = (f"{fmt(round(gap, 3))} {unit} ({gap / goal * 100:.0f}%) " +
                   ("under the goal" if t["met"] else "over the goal"))
        out.append(t)
    for tid, what, sec, run, metric, unit, better in VS_SYSTEM_RATIO:
        res = sections.get(sec, {}).get("results", {})
        xs = res.get(run, {}).get("_runs", {}).get(metric)
        ys = res.get(run + "_system", {}).get("_runs", {}).get(metric)
        t = {"id": tid, "what": what, "unit": unit,
             "goal": "shipped/system " + (">= 1" if better == "higher" else "<= 1")}
        pairs = [(x, y) for x, y in zip(xs or [], ys or []) if y]
        if not pairs:
            t["status"] = "not measured"
            out.append(t)
            continue
        rs = [x / y for x, y in pairs]
        t["shipped"] = _stat([x for x, _ in pairs])
        t["system"] = _stat([y for _, y in pairs])
        t["ratio"] = _stat(rs)
        med = t["ratio"]["median"]
        lo, hi = median_interval(rs)
        t["ratio"]["lo95"], t["ratio"]["hi95"] = round(lo, 3), round(hi, 3)
        good = med >= 1 if better == "higher" else med <= 1
        # The interval's worse end: past 1 there, the shipped build is worse beyond doubt.
        clear_worse = hi < 1 if better == "higher" else lo > 1
        t["met"] = not clear_worse
        t["status"] = "met" if t["met"] else "missed"
        ahead = sum(1 for r in rs if (r >= 1 if better == "higher" else r <= 1))
        t["rounds_shipped_as_good"] = ahead
        worse = (1 - med) if better == "higher" else (med - 1)
        word = ("slower" if better == "higher" else "higher") if worse > 0 else \
            ("faster" if better == "higher" else "lower")
        t["by"] = (f"{abs(worse) * 100:.1f}% {word} (median of {len(rs)} per-round ratios, 95 % "
                   f"interval [{lo:.3f}, {hi:.3f}]); as good or better in {ahead} of "
                   f"{len(rs)} rounds")
        if not good and t["met"]:
            t["by"] = "no difference measurable: " + t["by"]
        out.append(t)
    return out


def parse_wrk(path):
    text = open(path).read()
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        sys.exit(f"report: no Requests/sec in {path}:\n{text[-300:]}")
    out["rps"] = float(m.group(1))
    units = {"us": 1, "ms": 1000, "s": 1000000}
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m:
            out[key] = round(float(m.group(1)) * units[m.group(2)], 1)
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    out["errors"] = errors
    print(json.dumps(out))


def _pct(xs, p):
    xs = sorted(xs)
    return xs[round(p * (len(xs) - 1))]


def parse_logs(logdir, invokes):
    """lambda-sim log streams: extensionOverhead per invoke (stash's EMF lines carry it as
    ExtensionOverhead; a platform.report event printed as JSON carries it as a span) and the
    REPORT lines' Duration.  Prints one JSON object; exits 1 if there is no REPORT line."""
    overhead, duration = [], []
    for root, _, files in os.walk(logdir):
        for fn in files:
            for line in open(os.path.join(root, fn), errors="replace"):
                m = re.search(r"^REPORT RequestId: \S+\tDuration: ([\d.]+) ms", line)
                if m:
                    duration.append(float(m.group(1)))
                    continue
                i = line.find("{")
                if i < 0 or "xtensionOverhead" not in line:
                    continue
                try:
                    doc = json.loads(line[i:])
                except ValueError:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("ExtensionOverhead"),
                                                        (int, float)):
                    overhead.append(float(doc["ExtensionOverhead"]))
                    continue
                rec = doc.get("record", {}) if isinstance(doc, dict) else {}
                for span in rec.get("spans", []) if isinstance(rec, dict) else []:
                    if span.get("name") == "extensionOverhead":
                        overhead.append(float(span.get("durationMs", 0)))
    if not duration:
        sys.exit(f"report: no REPORT line under {logdir}")
    out = {"reports": len(duration), "duration_p50_ms": _pct(duration, 0.5),
           "duration_p99_ms": _pct(duration, 0.99)}
    if overhead:
        out.update(overhead_n=len(overhead), overhead_p50_ms=_pct(overhead, 0.5),
                   overhead_p99_ms=_pct(overhead, 0.99),
                   overhead_mean_ms=round(sum(overhead) / len(overhead), 3))
    if invokes:
        inv = json.load(open(invokes))
        out.update(invoke_p50_us=inv["p50_us"], invoke_p99_us=inv["p99_us"],
                   invokes_refused=inv["errors"])
    print(json.dumps(out))


def machine(load_text=None):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    load = [float(x) for x in load_text.split()] if load_text else os.getloadavg()
    # bench/run.sh exports the load average as it starts.
    start = [float(x) for x in os.environ.get("BENCH_LOAD_START", "").split()]
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem,
        "kernel": platform.release(), "loadavg_at_start": [round(x, 2) for x in start] or None,
        "loadavg_at_end": [round(x, 2) for x in load],
        "note": "shared 2-core VM; other developers build and test on it at the same time, so "
                "figures are noisy: medians of repeats, ratios paired per repeat",
    }


LOWER_IS_BETTER = ("_us", "_ms", "errors")


def best_of_modes(results, pattern, target):
    """Adds results[target]: per repeat, each metric's best value over the names matching
    pattern (lowest latency, highest rate), and which mode gave the best p50 or rate."""
    modes = {m.group(1): res["_runs"] for name, res in results.items()
             for m in [re.match(pattern, name)] if m}
    if not modes or target in results:
        return
    metrics = set.intersection(*(set(r) for r in modes.values()))
    n = min(len(r[k]) for r in modes.values() for k in metrics) if metrics else 0
    runs = {}
    for k in metrics:
        pick = min if k.endswith(LOWER_IS_BETTER) else max
        runs[k] = [pick(r[k][i] for r in modes.values()) for i in range(n)]
    key = "rps" if "rps" in metrics and "p50_us" not in metrics else "p50_us"
    wins = {}
    for i in range(n):
        pick = min if key == "p50_us" else max
        best = pick(modes, key=lambda m: modes[m][key][i])
        wins[best] = wins.get(best, 0) + 1
    results[target] = {"_runs": runs, "_best_mode": max(wins, key=wins.get) if wins else None}


def aggregate(raw_path):
    sections = {name: {"status": "missing", "reason": "no record", "results": {}}
                for name, _, _ in SECTIONS}
    for line in open(raw_path):
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        sec = sections.setdefault(rec["section"], {"status": "missing", "reason": "",
                                                   "results": {}})
        if "status" in rec:
            sec["status"], sec["reason"] = rec["status"], rec["reason"]
            continue
        runs = sec["results"].setdefault(rec["name"], {"_runs": {}})["_runs"]
        for k, v in rec["metrics"].items():
            if isinstance(v, (int, float)):
                runs.setdefault(k, []).append(v)
    # The floor is libmicrohttpd in its fastest mode: per repeat, the best of the modes measured.
    best_of_modes(sections["hit_latency"]["results"], r"floor_([a-z]+)$", "floor")
    for c in (1, 8, 64):
        best_of_modes(sections["throughput"]["results"], rf"floor_([a-z]+)_c{c}$", f"floor_c{c}")
    # Peers come from the Node process of the hit-latency section.
    if sections["peers"]["status"] == "missing" and sections["peers"]["results"]:
        sections["peers"]["status"] = sections["hit_latency"]["status"]
        sections["peers"]["reason"] = "measured with hit_latency"
    elif sections["peers"]["status"] == "missing":
        sections["peers"]["status"] = sections["hit_latency"]["status"]
        sections["peers"]["reason"] = sections["hit_latency"]["reason"]
    for sec in sections.values():
        for res in sec["results"].values():
            for k, xs in res["_runs"].items():
                if not xs:
                    continue
                res[k] = {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
                          "max": round(max(xs), 3), "n": len(xs)}
    return sections


def judge(sections):
    out = []
    for tid, desc, sec, fn, op, target, unit in TARGETS:
        v = fn(sections[sec]["results"]) if sec in sections else None
        t = {"id": tid, "what": desc, "section": sec, "target": f"{op} {target} {unit}"}
        if v is None:
            t.update(status="not measured")
        else:
            med, lo, hi = (round(x, 3) for x in v)
            met = med <= target if op == "<=" else med >= target
            t.update(median=med, min=lo, max=hi, unit=unit, met=met, status="met" if met else
                     "missed")
            if not met:
                t["missed_by"] = (f"{(med / target - 1) * 100:.0f}% over" if op == "<=" else
                                  f"{(1 - med / target) * 100:.0f}% short")
        out.append(t)
    return out


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}".rstrip("0").rstrip(".") if abs(x) < 100 else f"{x:.0f}"
    return str(x)


# Shown in bench.md (bench.json keeps everything): the figures a reader compares.
MD_SKIP = {"requests", "conns", "status", "body_bytes", "p90_us", "min_us", "max_us", "mean_us"}
METRIC_ORDER = {"p50_us": 0, "p99_us": 1, "rps": 2}


def _cell(v, unit=""):
    if not v:
        return "-"
    return f"{fmt(v['median'])}{' ' + unit if unit else ''} [{fmt(v['min'])}, {fmt(v['max'])}]"


def render_vs_system(doc):
    """The shipped build against the system build: one row per figure."""
    rows = doc.get("vs_system") or []
    if not rows:
        return []
    sizes = doc["sections"].get("footprint", {}).get("results", {})
    L = ["## The shipped build against the system build", "",
         "Both builds measured in the same run, round by round; a ratio is taken within each "
         "round, then its median. Medians [min, max] over the rounds. Footprint: in each round "
         "one build right after the other, their order alternating. Throughput and latency "
         "(paired): the two builds under the same load at once, taking turns every 10 ms, "
         "on one CPU with 8 and 64 connections "
         "(section \"The shipped build against the system build, under the same load at "
         "once\").", "",
         f"| figure | shipped ({'static, musl' if _is_static(doc, '') else 'dynamic'}) | "
         "system build (Debian's shared libraries) | "
         "shipped/system per round | goal | verdict |",
         "|---|---|---|---|---|---|"]
    for t in rows:
        if t["status"] == "not measured":
            L.append(f"| {t['what']} | - | - | - | {t['goal']} | not measured |")
            continue
        verdict = ("met" if t["met"] else "**missed**") + f": {t['by']}"
        L.append(f"| {t['what']} | {_cell(t.get('shipped'), t['unit'])} | "
                 f"{_cell(t.get('system'), t['unit'])} | {_cell(t.get('ratio'), 'x')} | "
                 f"{t['goal']} | {verdict} |")
    L.append("")
    b, bs = sizes.get("binary", {}), sizes.get("binary_system", {})
    if b.get("stripped_bytes"):
        text = (f"Sizes: the shipped binary is {b['stripped_bytes']['median'] / 1e6:.2f} MB "
                f"stripped ({b['unstripped_bytes']['median'] / 1e6:.2f} MB with its symbols)")
        if bs.get("stripped_bytes"):
            text += (f"; the system build {bs['stripped_bytes']['median'] / 1e6:.2f} MB "
                     f"stripped, plus the shared libraries it loads")
        zips = {k[len("layer_"):-len("_zip_bytes")]: v["median"] for k, v in b.items()
                if k.startswith("layer_") and isinstance(v, dict)}
        if zips:
            text += "; layer zips " + ", ".join(f"{k} {v / 1e6:.2f} MB"
                                                for k, v in sorted(zips.items()))
        else:
            text += "; no layer zips were built (`make layer`)"
        L += [text + ".", ""]
    return L


def render_md(doc):
    L = []
    L.append("# stash benchmarks")
    L.append("")
    m = doc["machine"]
    L.append(f"- date: {doc['date']}" + ("  (**QUICK run: counts too small to mean anything**)"
                                         if doc["quick"] else ""))
    L.append(f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB, Linux "
             f"{m['kernel']}, load average at the start {m.get('loadavg_at_start')}, at the "
             f"end {m['loadavg_at_end']}")
    L.append(f"- {m['note']}")
    L.append(f"- repeats: up to {doc['repeats']} (rounds of the comparisons; the n column "
             f"says how many); each figure is the median over repeats with [min, max]")
    L.append("- produced by `make bench` (bench/run.sh, bench/report.py); raw measurements in "
             "raw.jsonl")
    L.append("- the published comparisons (TTL under load, cold vs warm, prefetch at init) are "
             "not here: `make reproduce` reruns them beside the published figures, in "
             "[reproduce.md](reproduce.md)")
    L.append("")
    L += render_vs_system(doc)
    L.append("## Targets")
    L.append("")
    L.append("| target | measured median [min, max] | goal | verdict |")
    L.append("|---|---|---|---|")
    for t in doc["targets"]:
        if t["status"] == "not measured":
            L.append(f"| {t['what']} | - | {t['target']} | not measured |")
            continue
        verdict = "met" if t["met"] else f"**missed** ({t['missed_by']})"
        L.append(f"| {t['what']} | {fmt(t['median'])} {t['unit']} [{fmt(t['min'])}, "
                 f"{fmt(t['max'])}] | {t['target']} | {verdict} |")
    L.append("")
    for name, title, text in SECTIONS:
        sec = doc["sections"].get(name, {})
        L.append(f"## {title}")
        L.append("")
        L.append(text)
        L.append("")
        L.append(f"Status: {sec.get('status')} ({sec.get('reason', '')})")
        L.append("")
        res = sec.get("results", {})
        if not res:
            continue
        L.append("| run | metric | median | min | max | n |")
        L.append("|---|---|---|---|---|---|")
        for rname, metrics in res.items():
            if metrics.get("best_mode"):
                L.append(f"| {rname} | best libmicrohttpd mode | {metrics['best_mode']} | | | |")
            for k, v in sorted(metrics.items(), key=lambda kv: METRIC_ORDER.get(kv[0], 50)):
                if k.startswith("_") or not isinstance(v, dict) or k in MD_SKIP:
                    continue
                if k == "errors" and v["max"] == 0:
                    continue
                L.append(f"| {rname} | {k} | {fmt(v['median'])} | {fmt(v['min'])} | "
                         f"{fmt(v['max'])} | {v['n']} |")
        if sec.get("derived"):
            L.append("")
            L.append("| derived (per-repeat, then median) | median | min | max |")
            L.append("|---|---|---|---|")
            for k, v in sec["derived"].items():
                L.append(f"| {k} | {fmt(v['median'])} | {fmt(v['min'])} | {fmt(v['max'])} |")
        L.append("")
    if doc.get("analysis"):
        L.insert(L.index("## Targets"), "")
        at = L.index("## Targets")
        L[at:at] = ["## What bounds the figures (computed from this run)", ""] + \
            [f"- {x}" for x in doc["analysis"]] + [""]
    if doc.get("notes"):
        L.append("## Notes")
        L.append("")
        for n in doc["notes"]:
            L.append(f"- {n}")
        L.append("")
    return "\n".join(L)


DERIVED = {
    "hit_latency": [
        ("stash/floor p50", lambda r: _ratio(r, "stash", "floor", "p50_us")),
        ("stash/floor p99", lambda r: _ratio(r, "stash", "floor", "p99_us")),
        ("node fetch stash/floor p50", lambda r: _ratio(r, "node_fetch_stash",
                                                        "node_fetch_floor", "p50_us")),
        ("node fetch stash - floor p50 (us)", lambda r: _diff(r, "node_fetch_stash",
                                                              "node_fetch_floor", "p50_us")),
        ("stash/stash_system p50", lambda r: _ratio(r, "stash", "stash_system", "p50_us")),
        ("stash/stash_system p99", lambda r: _ratio(r, "stash", "stash_system", "p99_us")),
    ],
    "peers": [
        ("sdk_direct / fetch stash p50", lambda r: _ratio(r, "node_sdk_direct",
                                                          "node_fetch_stash_mixed", "p50_us")),
        ("fetch stash / powertools p50", lambda r: _ratio(r, "node_fetch_stash_mixed",
                                                          "node_powertools", "p50_us")),
    ],
    "throughput": [(f"stash/floor req/s, {c} conn", (lambda c: lambda r: _ratio(
        r, f"stash_c{c}", f"floor_c{c}", "rps"))(c)) for c in (1, 8, 64)] +
    [(f"stash/floor_thread req/s, {c} conn", (lambda c: lambda r: _ratio(
        r, f"stash_c{c}", f"floor_thread_c{c}", "rps"))(c)) for c in (1, 8, 64)] +
    [(f"stash/floor_pool req/s, {c} conn", (lambda c: lambda r: _ratio(
        r, f"stash_c{c}", f"floor_pool_c{c}", "rps"))(c)) for c in (1, 8, 64)] +
    # The previous design of the local API (BENCH_PREV_REV), measured in the same rounds.
    [(f"stash/stash_prev req/s, {c} conn", (lambda c: lambda r: _ratio(
        r, f"stash_c{c}", f"stash_prev_c{c}", "rps"))(c)) for c in (1, 8, 64)] +
    [(f"stash/stash_system req/s, {c} conn", (lambda c: lambda r: _ratio(
        r, f"stash_c{c}", f"stash_c{c}_system", "rps"))(c)) for c in (1, 8, 64)] +
    [("stash/stash_system CPU per request, 8 conn",
      lambda r: _ratio(r, "cost_c8", "cost_c8_system", "cpu_us_per_req"))],
    "footprint": [
        ("stash/stash_system peak RSS idle", lambda r: _ratio(r, "rss", "rss_system", "idle_kb")),
        ("stash/stash_system peak RSS 1000 x 4 KB",
         lambda r: _ratio(r, "rss", "rss_system", "cached_1000x4k_kb")),
        ("stash/stash_system exec to first answer",
         lambda r: _ratio(r, "exec_first", "exec_first_system", "exec_to_first_ms")),
        ("stash/stash_system page faults to first answer",
         lambda r: _ratio(r, "exec_first", "exec_first_system", "faults_to_first")),
    ],
    "lambda": [
        ("invoke p50: stash / direct SDK", lambda r: _ratio(r, "stash", "direct",
                                                            "invoke_p50_us")),
        ("REPORT Duration p50: stash - direct SDK (ms)",
         lambda r: _diff(r, "stash", "direct", "duration_p50_ms")),
    ],
    "refresh_ahead": [
        ("p99 refresh-ahead on / off", lambda r: _ratio(r, "ahead_on", "ahead_off", "p99_us")),
        ("max refresh-ahead on / off", lambda r: _ratio(r, "ahead_on", "ahead_off", "max_us")),
    ],
    "paired": [(f"ab_c{c} / ab_c{c}_system req/s", (lambda c: lambda r: _ratio(
        r, f"ab_c{c}", f"ab_c{c}_system", "rps"))(c)) for c in (1, 8, 64)] +
    [(f"ab_c{c} / ab_c{c}_system p50", (lambda c: lambda r: _ratio(
        r, f"ab_c{c}", f"ab_c{c}_system", "p50_us"))(c)) for c in (1, 8, 64)] +
    [(f"ab_c{c} / ab_c{c}_system p99", (lambda c: lambda r: _ratio(
        r, f"ab_c{c}", f"ab_c{c}_system", "p99_us"))(c)) for c in (1, 8, 64)],
    "miss_path": [
        ("stash miss - direct p50 (us)", lambda r: _diff(r, "stash_miss", "direct", "p50_us")),
        ("stash miss / direct p50", lambda r: _ratio(r, "stash_miss", "direct", "p50_us")),
    ],
}


def _med(doc, sec, name, metric):
    try:
        return doc["sections"][sec]["results"][name][metric]["median"]
    except KeyError:
        return None


def _is_pie(doc, sfx):
    b = doc["sections"].get("footprint", {}).get("results", {}).get("binary" + sfx, {})
    pie = b.get("pie", {}).get("median") if isinstance(b.get("pie"), dict) else None
    return pie == 1


def _is_static(doc, sfx):
    b = doc["sections"].get("footprint", {}).get("results", {}).get("binary" + sfx, {})
    st = b.get("static", {}).get("median") if isinstance(b.get("static"), dict) else None
    if st is not None:
        return st == 1
    idle = doc["sections"].get("footprint", {}).get("results", {}).get("rss_by_mapping_idle" + sfx,
                                                                       {})
    return bool(idle) and not any(".so" in k for k in idle)


def footprint_analysis(doc, sfx):
    """What bounds one build's memory and start-up, from its own figures in this run."""
    out = []
    fp = "footprint"
    name = "The system build" if sfx else "The shipped build"
    static = _is_static(doc, sfx)
    res = doc["sections"].get(fp, {}).get("results", {})
    idle = res.get("rss_by_mapping_idle" + sfx, {})
    idle_kb = _med(doc, fp, "rss" + sfx, "idle_kb")
    at_main = _med(doc, fp, "exec_first" + sfx, "same_libs_rss_kb")
    at_curl = _med(doc, fp, "exec_first" + sfx, "same_libs_curl_init_rss_kb")
    kind = "static, musl" if static else "dynamically linked against Debian's libraries"
    if idle and static:
        part = {k: idle[k]["median"] for k in ("binary_kb", "heap_kb", "anon_other_kb",
                                                 "stacks_kb", "other_kb") if k in idle}
        heap = part.get("heap_kb", 0) + part.get("anon_other_kb", 0)
        out.append(f"{name} ({kind}): RSS idle is {idle['total_kb']['median'] / 1024:.2f} MB: "
                   f"{part.get('binary_kb', 0) / 1024:.2f} MB of the binary's own pages (stash, "
                   f"libcurl, OpenSSL, libmicrohttpd, cJSON and musl in one file; only the pages "
                   f"touched are resident), {heap / 1024:.2f} MB of heap and anonymous maps, "
                   f"{part.get('stacks_kb', 0) / 1024:.2f} MB of "
                   f"stacks. No shared library is mapped, so nothing is loaded or relocated "
                   f"that stash does not use.")
    elif idle:
        libs = {k[:-3]: v["median"] for k, v in idle.items()
                if isinstance(v, dict) and (".so" in k or k == "libs_other_kb")}
        own = sum(idle[k]["median"] for k in ("heap_kb", "anon_other_kb", "stacks_kb",
                                              "binary_kb") if k in idle)
        top = sorted(((k, v) for k, v in libs.items() if k != "libs_other"),
                     key=lambda kv: -kv[1])[:4]
        text = (f"{name} ({kind}): RSS idle is {sum(libs.values()) / 1024:.1f} MB of shared "
                f"libraries and {own / 1024:.2f} MB of stash's own (heap, anonymous maps, "
                f"stacks, binary text): "
                + ", ".join(f"{k} {v / 1024:.1f} MB" for k, v in top) + ".")
        if idle_kb is not None and at_main is not None and at_curl is not None:
            text += (f" A process linked like it has {at_main / 1024:.1f} MB resident as "
                     f"main() begins (the loader has mapped and relocated the libraries, nothing "
                     f"else has run) and {at_curl / 1024:.1f} MB once curl_global_init has set up "
                     f"libcurl and OpenSSL; stash's own start-up (configuration, cache, the two "
                     f"listeners and their threads) adds {(idle_kb - at_curl) / 1024:.1f} MB to "
                     f"that.")
        text += (" Debian's libmicrohttpd pulls in GnuTLS and libcurl pulls in OpenSSL, LDAP, "
                 "Kerberos, SSH and more; their resident pages alone are past the 4 MB target.")
        out.append(text)
    full_anon = _med(doc, fp, "rss" + sfx, "cached_1000x4k_anon_kb")
    idle_anon = _med(doc, fp, "rss" + sfx, "idle_anon_kb")
    full_kb = _med(doc, fp, "rss" + sfx, "cached_1000x4k_kb")
    answer = _med(doc, fp, "rss" + sfx, "answer_bytes")
    if full_anon is not None and idle_anon is not None and answer and full_kb is not None:
        stored = 1000 * answer / 1024
        grew = full_anon - idle_anon
        out.append(f"{name}, 1000 x 4 KB cached: {full_kb / 1024:.1f} MB peak; its anonymous "
                   f"memory grows by {grew / 1024:.1f} MB for 1000 answers of {answer:.0f} bytes "
                   f"({stored / 1024:.1f} MB: the JSON stash serves, stored once and handed to "
                   f"every hit without a copy): {100 * (grew - stored) / stored:.0f}% above the answers "
                   f"themselves (entries, keys, the allocator's slack).")
    e = _med(doc, fp, "exec_first" + sfx, "exec_to_first_ms")
    faults = _med(doc, fp, "exec_first" + sfx, "faults_to_first")
    fault_us = _med(doc, fp, "exec_first" + sfx, "page_fault_us")
    try:
        e_min = res["exec_first" + sfx]["exec_to_first_ms"]["min"]
    except KeyError:
        e_min = None
    if e is None or faults is None:
        return out
    text = (f"{name}: exec to first answer {e:.1f} ms (best round {fmt(e_min)} ms), "
            f"{faults:.0f} page faults")
    libs_ms = _med(doc, fp, "exec_first" + sfx, "exec_to_exit_same_libs_ms")
    faults_main = _med(doc, fp, "exec_first" + sfx, "same_libs_minflt")
    faults_curl = _med(doc, fp, "exec_first" + sfx, "same_libs_curl_init_minflt")
    if not static and faults_main is not None and libs_ms is not None:
        text += (f". A process linked like it takes {faults_main:.0f} of those faults before "
                 f"main() (the loader mapping and relocating 30-odd libraries, and their "
                 f"constructors) and {libs_ms:.1f} ms from exec to exit doing nothing")
        if faults_curl is not None:
            text += (f"; curl_global_init (OpenSSL's initialisation) takes "
                     f"{faults_curl - faults_main:.0f} more")
    elif static:
        text += (" (the binary's pages as they are first touched, "
                 + ("the pages the start-up relocation writes, " if _is_pie(doc, sfx) else "")
                 + "heap, stacks and the threads' stacks)")
    if fault_us is not None:
        fault_ms = faults * fault_us / 1000
        text += (f". A page fault cost {fault_us:.1f} us on this VM during the run, so the "
                 f"faults alone are about {fault_ms:.1f} ms")
        if e > 1.5 * fault_ms:
            text += (f"; the other {e - fault_ms:.1f} ms is the instructions below and waiting "
                     f"for a CPU on the shared 2-core machine (see the load average above)")
    text += ". The counts do not move with the load; the time does."
    ins = {k: _med(doc, fp, "startup_instructions" + sfx, k + "_minstr")
           for k in ("total", "loader", "constructors", "curl_global_init", "main_rest",
                     "threads", "exit")}
    if ins["total"] is not None:
        parts = [(("self-relocation (static PIE)" if static else "the dynamic loader"),
                  ins["loader"]), ("constructors", ins["constructors"]),
                 ("curl_global_init (OpenSSL's initialisation)", ins["curl_global_init"]),
                 ("the rest of main (configuration, cache, listeners)", ins["main_rest"]),
                 ("the threads (listeners, the request)", ins["threads"]),
                 ("exit (the libraries' cleanup)", ins["exit"])]
        text += (f" Instructions (callgrind, start, one request, stop): {ins['total']:.2f} M in "
                 f"all; " + ", ".join(f"{k} {v:.2f} M" for k, v in parts if v is not None)
                 + ".")
    out.append(text)
    return out


def cost_analysis(doc):
    """Why the builds' throughput differs: their costs per request at 8 connections."""
    tp = "throughput"
    a = {k: _med(doc, tp, "cost_c8", k) for k in
         ("cpu_us_per_req", "ctxsw_per_req", "faults_per_req", "futex_per_req", "mmap_per_req",
          "munmap_per_req", "madvise_per_req")}
    b = {k: _med(doc, tp, "cost_c8_system", k) for k in a}
    if a["cpu_us_per_req"] is None or b["cpu_us_per_req"] is None:
        return []
    f = lambda v: "-" if v is None else fmt(v)
    cpu = doc["sections"].get(tp, {}).get("derived", {}).get(
        "stash/stash_system CPU per request, 8 conn")
    n = doc["sections"].get(tp, {}).get("results", {}).get("cost_c8", {}).get(
        "cpu_us_per_req", {}).get("n", 0)
    text = (f"Cost per request at 8 connections (perf on the stash process, a fixed count of "
            f"requests, so per request whatever the load; medians of {n} rounds): CPU "
            f"{f(a['cpu_us_per_req'])} us for the shipped build against "
            f"{f(b['cpu_us_per_req'])} us for the system build"
            + (f" (per-round ratio {f(cpu['median'])} [{f(cpu['min'])}, {f(cpu['max'])}])"
               if cpu else "") + "; per request "
            f"futex {f(a['futex_per_req'])} against {f(b['futex_per_req'])}, mmap "
            f"{f(a['mmap_per_req'])} against {f(b['mmap_per_req'])}, munmap "
            f"{f(a['munmap_per_req'])} against {f(b['munmap_per_req'])}, page faults "
            f"{f(a['faults_per_req'])} against {f(b['faults_per_req'])}, context switches "
            f"{f(a['ctxsw_per_req'])} against {f(b['ctxsw_per_req'])}.")
    if (a["mmap_per_req"] or 0) > 10 * max(b["mmap_per_req"] or 0, 0.001):
        text += (" The extra system calls and faults are the allocator's: musl's (mallocng) "
                 "keeps no per-thread "
                 "cache and takes one process-wide lock for every malloc and free, and a "
                 "group of slots for blocks the size of an answer (4.4 KB: a few slots in a "
                 "16 KB map) is mapped with mmap when it is needed and returned with munmap "
                 "once it is empty, so with several connections answers keep taking fresh "
                 "pages from the kernel (a fault for each page touched, and each munmap "
                 "flushes the TLB of the other CPUs running the process's threads); glibc's "
                 "malloc keeps freed blocks in "
                 "per-thread caches and arenas and hardly calls the kernel at all. A hit "
                 "allocates a copy of the answer (the cache's, under the cache's lock) plus "
                 "libmicrohttpd's response and header blocks.")
    pa = doc["sections"].get(tp, {}).get("results", {}).get("profile_c8", {})
    pb = doc["sections"].get(tp, {}).get("results", {}).get("profile_c8_system", {})
    if pa and pb:
        g = ("kernel", "kernel_tlb_ipi", "kernel_mm", "alloc", "locks", "memcpy_memset",
             "user_other")
        text += (" CPU by symbol group (perf, 8 connections), shipped / system: " +
                 ", ".join(f"{k} {f(_med(doc, tp, 'profile_c8', k + '_pct'))}% / "
                           f"{f(_med(doc, tp, 'profile_c8_system', k + '_pct'))}%" for k in g)
                 + " (kernel_tlb_ipi: cross-CPU TLB flushes, as an munmap in a process "
                 "whose threads run on other CPUs makes; kernel_mm: page faults, mmap/munmap "
                 "and the memory map's lock; both are part of kernel; top symbols in "
                 "profile-c8.txt and profile-c8_system.txt).")
    return [text]


def analysis(doc):
    """Sentences computed from this run's numbers: what bounds each missed target."""
    out = []
    t = {x["id"]: x for x in doc["targets"]}
    out += footprint_analysis(doc, "")
    out += footprint_analysis(doc, "_system")
    out += cost_analysis(doc)
    nf = t.get("node_fetch_vs_floor", {})
    a = _med(doc, "hit_latency", "node_fetch_stash", "p50_us")
    b = _med(doc, "hit_latency", "node_fetch_floor", "p50_us")
    if a is not None and b is not None:
        out.append(f"Node fetch p50: {a:.0f} us against stash, {b:.0f} us against the floor "
                   f"({a - b:+.0f} us); the raw C client sees "
                   f"{_med(doc, 'hit_latency', 'stash', 'p50_us')} us vs "
                   f"{_med(doc, 'hit_latency', 'floor', 'p50_us')} us."
                   + ("" if nf.get("met", True) else
                      " The raw client's gap is the server's own cost; the rest of Node's gap "
                      "is on the client side of the exchange (scheduling of the server thread "
                      "and Node's event loop on a 2-core machine)."))
        m = _med(doc, "peers", "node_fetch_stash_mixed", "p50_us")
        sdk = _med(doc, "peers", "node_sdk_direct", "p50_us")
        pt = _med(doc, "peers", "node_powertools", "p50_us")
        if m is not None and sdk is not None and pt is not None:
            out.append(f"Peers, same process: fetch through stash {m:.0f} us p50, a direct SDK "
                       f"call to fake-aws {sdk:.0f} us (no TLS, no network: a real endpoint adds "
                       f"milliseconds), Powertools' in-process cache hit {pt:.1f} us (no IPC, "
                       f"but per process and language, with no single-flight or telemetry).")
    prof = doc["sections"].get("hit_latency", {}).get("results", {}).get("profile_hit", {})
    if prof:
        parts = sorted(((k[:-4], v["median"]) for k, v in prof.items() if isinstance(v, dict)),
                       key=lambda kv: -kv[1])
        text = ("Where a hit's time goes (perf, the shipped build's process while the raw "
                "client loops): " + ", ".join(f"{k} {v:.1f}%" for k, v in parts[:6]) + ".")
        if _is_static(doc, ""):
            text += (" The binary is static: musl, libmicrohttpd, OpenSSL and stash are one "
                     "object to perf, so the split is kernel against everything else (symbols "
                     "and call chains in profile-hit.txt). The hit path is bound by loopback "
                     "TCP and the wake-ups of the connection's thread in the kernel.")
        else:
            text += (" The hit path is bound by loopback TCP and the wake-ups of the "
                     "connection's thread in the kernel; stash's own code is a small share "
                     "(call chains in profile-hit.txt).")
        out.append(text)
    tp = doc["sections"].get("throughput", {}).get("derived", {})
    if "stash/floor_pool req/s, 64 conn" in tp:
        own = {c: tp.get(f"stash/floor_pool req/s, {c} conn", {}).get("median") for c in (8, 64)}
        best = {c: _med(doc, "throughput", f"floor_c{c}", "rps") for c in (8, 64)}
        res_tp = doc["sections"]["throughput"]["results"]
        mode = {c: res_tp.get(f"floor_c{c}", {}).get("best_mode") or
                res_tp.get(f"floor_c{c}", {}).get("_best_mode") for c in (8, 64)}
        prev = {c: tp.get(f"stash/stash_prev req/s, {c} conn", {}).get("median") for c in (8, 64)}
        out.append(f"Throughput: against the floor in stash's own mode (an epoll pool) stash "
                   f"reaches {own[8]} (8 connections) and {own[64]} (64) of its rate. The "
                   f"fastest floor was the {mode[8]} mode at 8 connections ({best[8]:.0f} req/s) "
                   f"and the {mode[64]} mode at 64 ({best[64]:.0f} req/s)." +
                   (f" Against the previous build (BENCH_PREV_REV): {prev[8]} and {prev[64]}."
                    if prev[8] is not None else "") +
                   (" For the shipped build its allocator's cost per request (above) comes on "
                    "top." if _is_static(doc, "") else ""))
    hit = _med(doc, "hit_latency", "floor", "p50_us")
    try:
        best_rep = doc["sections"]["hit_latency"]["results"]["floor"]["p50_us"]["min"]
    except KeyError:
        best_rep = hit
    if hit is not None:
        out.append(f"The earlier reference figures for the floor (about 55 us p50, 27k and 33k "
                   f"req/s at 8 and 64 connections) resemble what this harness's first floor "
                   f"measured while it closed the connection after every answer (a "
                   f"libmicrohttpd answer queued before the request is read does that; fixed in "
                   f"bench/floor.c). Kept alive, the floor answers in {hit:.0f} us p50 in this "
                   f"run (best repeat {best_rep:.0f} us; the spread is other load on the "
                   f"machine); all ratios here are against that kept-alive floor.")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw")
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parse-wrk")
    ap.add_argument("--notes", help="a file of notes, one a line, added to bench.md")
    ap.add_argument("--date", help="when the run started (default: now)")
    ap.add_argument("--load", help="load average at the end of the run (default: now)")
    ap.add_argument("--parse-logs")
    ap.add_argument("--invokes")
    a = ap.parse_args()
    if a.parse_wrk:
        parse_wrk(a.parse_wrk)
        return 0
    if a.parse_logs:
        parse_logs(a.parse_logs, a.invokes)
        return 0
    sections = aggregate(a.raw)
    for name, items in DERIVED.items():
        d = {}
        for label, fn in items:
            v = fn(sections[name]["results"])
            if v is not None:
                d[label] = {"median": round(v[0], 3), "min": round(v[1], 3),
                            "max": round(v[2], 3)}
        sections[name]["derived"] = d
    repeats = max([v["n"] for s in sections.values() for r in s["results"].values()
                   for k, v in r.items() if not k.startswith("_") and isinstance(v, dict)] or [0])
    notes = []
    if a.notes and os.path.exists(a.notes):
        notes = [x.strip() for x in open(a.notes) if x.strip()]
    doc = {
        "date": a.date or datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(a.load), "quick": a.quick, "repeats": repeats,
        "targets": judge(sections), "vs_system": vs_system(sections), "sections": sections,
        "notes": notes,
    }
    for sec in doc["sections"].values():
        for r in sec["results"].values():
            r.pop("_runs", None)
    doc["analysis"] = analysis(doc)
    for s in doc["sections"].values():
        for r in s["results"].values():
            r.pop("_runs", None)
            if r.get("_best_mode"):
                r["best_mode"] = r.pop("_best_mode")
            r.pop("_best_mode", None)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "bench.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "bench.md"), "w") as f:
        f.write(render_md(doc))
    # Summary on stdout.
    print(f"bench: results in {a.out}/bench.md and bench.json"
          + (" (QUICK run)" if a.quick else ""))
    for name, _, _ in SECTIONS:
        s = doc["sections"][name]
        print(f"  {name:22s} {s['status']:8s} {s['reason']}")
    for t in doc["targets"]:
        if t["status"] == "not measured":
            print(f"  {t['what']:45s} not measured")
        else:
            extra = "" if t["met"] else f" MISSED by {t['missed_by']}"
            print(f"  {t['what']:45s} {fmt(t['median']):>8s} {t['unit']:2s} "
                  f"(goal {t['target']}){extra}")
    for t in doc["vs_system"]:
        if t["status"] == "not measured":
            print(f"  {t['what']:45s} shipped vs system: not measured")
        else:
            print(f"  {t['what']:45s} shipped {fmt(t['shipped']['median'])} {t['unit']}, system "
                  f"{fmt(t.get('system', {}).get('median'))} (goal {t['goal']}): "
                  f"{t['status']}, {t['by']}")
    # A paired section skipped because there is no system build (under DEPS=system the shipped
    # build is the system build) has nothing to measure; any other gap is a failure.
    bad = [n for n, s in doc["sections"].items()
           if (s["status"] != "ok" or not s["results"]) and
           not (n == "paired" and s["status"] == "skipped" and "have_system" in s["reason"])]
    if bad:
        print(f"bench: sections without numbers: {' '.join(bad)}")
    return 1 if (a.quick and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
