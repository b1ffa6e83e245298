#!/usr/bin/env python3
"""bench/reproduce.py --build BUILD [--quick] [--out DIR]: the three published comparisons that
make people put a secrets cache in a Lambda extension, rerun under lambda-sim with stash and
fake-aws on 127.0.0.1, and written beside the published figures (`make reproduce`).

  1. TTL under load (AWS Compute blog): open-loop arrivals ramping linearly over the published
     profile (bench/published.json), a function reading one parameter per invoke; TTL 0, 1, 300 s.
  2. Cold and warm (the extension's announcement): one new environment, three sequential
     invokes fetching one secret, through stash and with the AWS SDK v3 in the function.
  3. Prefetch at init (Square): three secrets read during init by the SDK, through stash, and
     through stash with STASH_PREFETCH_SECRETS.

fake-aws's latency is one model: every API call waits PER_CALL ms, and the first call on a new
connection waits PER_CONN ms more (the TLS handshake a real client pays).  The two values are
calibrated once, at the start of the run, from the published no-extension fetch times less what
the SDK costs on this machine with no latency at all; then every experiment runs with them.

Upstream calls are counted twice, by fake-aws (/_fake/stats) and from the EMF lines stash wrote to
the environments' log streams; the run fails (exit 1, after writing its results) if they differ.

Output: reproduce.md, reproduce.json and three SVG charts in --out (default bench/results for a
full run, BUILD/reproduce for --quick, so a quick run never overwrites the committed results).
Every number in them comes from this run or from bench/published.json.  Progress goes to stderr.
"""
import argparse
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCS = os.path.join(ROOT, "sim", "functions")
NODE_DIR = os.path.join(ROOT, "tests", "node")
INVOKE_PATH = "/2015-03-31/functions/function/invocations"

# Credentials shared by fake-aws, stash and the functions (fake-aws verifies every signature with
# this key pair and accepts any session token).
CREDS = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDREPRODUCEEXAMPLE",
         "AWS_SECRET_ACCESS_KEY": "reproduceSecretKeyNotARealOne000000000000"}
SECRET_ID = "bench/secret-0"
PARAM_NAME = "/bench/param-0"
THREE_SECRETS = "bench/secret-1,bench/secret-2,bench/secret-3"

T_START = time.monotonic()


def say(msg):
    print(f"reproduce [{time.monotonic() - T_START:6.1f} s] {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def median(xs):
    return statistics.median(xs) if xs else None


def pct(xs, p):
    """p-th percentile (nearest rank) of xs."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def r2(x):
    return None if x is None else round(x, 2)


def rnd(x):
    """Two decimals, or three significant ones below 0.1 ms (stash's own answer times)."""
    if x is None:
        return None
    return round(x, 2) if abs(x) >= 0.1 else float(f"{x:.3g}")


# ------------------------------------------------------------------------------------------------
# Processes: fake-aws and lambda-sim, each on a free port of 127.0.0.1.

def wait_for(pred, secs, what):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise Failure(f"{what} did not happen within {secs} s")


class FakeAws:
    def __init__(self, build, work, data):
        self.log = os.path.join(work, "fake-aws.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [os.path.join(build, "bin", "fake-aws"), "--port", "0", "--data", data,
                 "--access-key", CREDS["AWS_ACCESS_KEY_ID"],
                 "--secret-key", CREDS["AWS_SECRET_ACCESS_KEY"]],
                stdout=out, stderr=subprocess.STDOUT)

        def port():
            with open(self.log) as f:
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
            if self.proc.poll() is not None:
                raise Failure(f"fake-aws exited: {open(self.log).read()[-300:]}")
            return m and int(m.group(1))
        try:
            self.port = wait_for(port, 20, "fake-aws listening")
        except Failure:
            self.proc.kill()
            self.proc.wait()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def ctl(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, "/_fake/" + path)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise Failure(f"fake-aws {path}: {r.status} {body[:200]!r}")
        return json.loads(body)

    def set_latency(self, per_call, per_conn):
        self.ctl("POST", f"latency?ms={per_call}&jitter=0&cold={per_conn}")

    def reset(self):
        self.ctl("POST", "reset")

    def calls(self):
        # Calls per service, batch operations included (stash prefetches with
        # BatchGetSecretValue and GetParameters), under the single operations' names, as the EMF
        # lines count them (SecretsManagerCalls, ParameterStoreCalls).
        s = self.ctl("GET", "stats")
        ops = s["ops"]
        return {"GetParameter": ops["GetParameter"]["calls"] + ops["GetParameters"]["calls"],
                "GetSecretValue": (ops["GetSecretValue"]["calls"]
                                   + ops["BatchGetSecretValue"]["calls"]),
                "new_connections": s["api_connections"]}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


class Sim:
    """One lambda-sim: FN (a file of sim/functions) under the Runtime API shim, stash as its
    extension when ext_dir holds it.  Generous timeouts: the machine may be busy."""

    def __init__(self, ctx, name, fn, stash, max_envs, env, queue_ms=0):
        self.ctx = ctx
        self.logs = os.path.join(ctx.work, "logs-" + name)
        shutil.rmtree(self.logs, ignore_errors=True)
        os.makedirs(self.logs)
        self.out = os.path.join(ctx.work, f"sim-{name}.log")
        ready = os.path.join(ctx.work, f"ready-{name}")
        if os.path.exists(ready):
            os.unlink(ready)
        kv = dict(CREDS, AWS_ENDPOINT_URL_SECRETS_MANAGER=ctx.fake.url,
                  AWS_ENDPOINT_URL_SSM=ctx.fake.url, STASH_NODE_DIR=NODE_DIR,
                  PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL="warn", **env)
        args = [os.path.join(ctx.build, "bin", "lambda-sim"),
                "--extensions", ctx.ext_stash if stash else ctx.ext_none,
                "--function", f"node {FUNCS}/runtime.mjs {FUNCS}/{fn}",
                "--memory", "128", "--timeout", "120", "--init-timeout", "120",
                "--shutdown-timeout", "10000", "--max-envs", str(max_envs),
                "--queue-ms", str(queue_ms), "--logs", self.logs, "--port", "0",
                "--ready-file", ready]
        for k, v in kv.items():
            args += ["--env", f"{k}={v}"]
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

        def port():
            if self.proc.poll() is not None:
                raise Failure(f"lambda-sim exited: {open(self.out).read()[-300:]}")
            try:
                with open(ready) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return None
        try:
            self.port = wait_for(port, 30, "lambda-sim listening")
        except Failure:
            self.proc.kill()
            self.proc.wait()
            raise

    def invoke(self, body=b"{}"):
        """One synchronous invoke: (status, answer bytes, ms)."""
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            c.request("POST", INVOKE_PATH, body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            return r.status, data, (time.monotonic() - t0) * 1000
        finally:
            c.close()

    def invoke_ok(self):
        st, data, _ = self.invoke()
        if st != 200:
            raise Failure(f"invoke answered {st}: {data[:300]!r}")
        return json.loads(data)

    def environments(self):
        return len(os.listdir(self.logs))

    def stop(self):
        """SIGTERM: every environment gets SHUTDOWN, so stash writes its last EMF lines."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("lambda-sim did not stop within 120 s of SIGTERM")
        return streams(self.logs)


REPORT_RE = re.compile(r"^REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms\tBilled Duration: (\d+) ms")
INIT_RE = re.compile(r"\tInit Duration: ([\d.]+) ms")
TTL_LINE_RE = re.compile(r"^ttl-load: start (\d+) fetch ([\d.]+) ms")


def streams(logdir):
    """Per environment (log stream file): REPORT lines, EMF objects, ttl-load lines."""
    out = []
    for name in sorted(os.listdir(logdir)):
        env = {"reports": [], "emf": [], "invokes": []}
        with open(os.path.join(logdir, name), errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = REPORT_RE.match(line)
                if m:
                    init = INIT_RE.search(line)
                    env["reports"].append({"request_id": m.group(1),
                                           "duration_ms": float(m.group(2)),
                                           "billed_ms": int(m.group(3)),
                                           "init_ms": float(init.group(1)) if init else None})
                elif line.startswith('{"_aws"'):
                    env["emf"].append(json.loads(line))
                else:
                    m = TTL_LINE_RE.match(line)
                    if m:
                        env["invokes"].append((int(m.group(1)), float(m.group(2))))
        out.append(env)
    return out


def emf_calls(envs):
    """Upstream calls as stash's EMF lines count them (a record split over several lines carries
    its counts on the first one only, so summing every line counts each call once)."""
    c = {"GetParameter": 0, "GetSecretValue": 0}
    for e in envs:
        for o in e["emf"]:
            c["GetParameter"] += int(o.get("ParameterStoreCalls", 0))
            c["GetSecretValue"] += int(o.get("SecretsManagerCalls", 0))
    return c


def emf_hits(envs):
    h = m = 0
    for e in envs:
        for o in e["emf"]:
            h += int(o.get("CacheHits", 0))
            m += int(o.get("CacheMisses", 0))
    return h, m


class Ctx:
    """What every experiment shares: paths, fake-aws, the counting checks."""

    def __init__(self, build, work, fake):
        self.build = build
        self.work = work
        self.fake = fake
        self.ext_stash = os.path.join(work, "ext-stash")
        self.ext_none = os.path.join(work, "ext-none")
        os.makedirs(self.ext_stash)
        os.makedirs(self.ext_none)
        shutil.copy(os.path.join(build, "extensions", "stash"), self.ext_stash)
        self.counts = []  # every stash run: fake-aws's count against the EMF lines'
        self.invocations = 0

    def count(self, label, fake_calls, envs):
        emf = emf_calls(envs)
        fake = {k: fake_calls[k] for k in ("GetParameter", "GetSecretValue")}
        self.counts.append({"run": label, "fake_aws": fake, "emf": emf, "agree": fake == emf})
        if fake != emf:
            say(f"{label}: upstream calls DISAGREE: fake-aws {fake}, EMF lines {emf}")
        return emf


# ------------------------------------------------------------------------------------------------
# The cold/warm runs (also the calibration): one environment, three sequential invokes.

def coldwarm_once(ctx, variant, label):
    stash = variant == "with_extension"
    ctx.fake.reset()
    sim = Sim(ctx, label, "fetch-timing.mjs" if stash else "fetch-timing-direct.mjs", stash, 1,
              {"SECRET_ID": SECRET_ID}, queue_ms=120000)
    try:
        answers = [sim.invoke_ok() for _ in range(3)]
    finally:
        envs = sim.stop()
    ctx.invocations += 3
    if len(envs) != 1 or len(envs[0]["reports"]) != 3:
        raise Failure(f"{label}: expected one environment with three REPORT lines, got "
                      f"{[len(e['reports']) for e in envs]}")
    if [a["phase"] for a in answers] != ["cold", "warm", "warm"]:
        raise Failure(f"{label}: unexpected fetch-timing answers {answers}")
    calls = ctx.fake.calls()
    if stash:
        ctx.count(label, calls, envs)
    rep = envs[0]["reports"]
    # stash's own time for each invoke's fetch: the FetchLatency of its EMF record (the
    # upstream call included), matched by request id.
    own = {}
    for o in envs[0]["emf"]:
        if "requestId" in o and o.get("FetchLatency"):
            own[o["requestId"]] = sum(o["FetchLatency"])
    return [{"fetch_ms": a["ms"], "duration_ms": r["duration_ms"], "billed_ms": r["billed_ms"],
             "init_ms": r["init_ms"], "stash_ms": own.get(r["request_id"])}
            for a, r in zip(answers, rep)], calls


def calibrate(ctx, pub, repeats):
    """PER_CALL and PER_CONN from the published no-extension fetch times: with no latency the SDK
    costs c0 on the cold fetch and w0 on a warm one here; the published warm fetches are then
    w0 + PER_CALL, the cold one c0 + PER_CONN + PER_CALL."""
    ctx.fake.set_latency(0, 0)
    cold, warm = [], []
    for r in range(repeats):
        say(f"calibration: SDK fetches with no latency, run {r + 1}/{repeats}")
        runs, _ = coldwarm_once(ctx, "without_extension", f"calibrate-{r}")
        cold.append(runs[0]["fetch_ms"])
        warm += [runs[1]["fetch_ms"], runs[2]["fetch_ms"]]
    p = pub["coldwarm"]["fetch_ms"]["without_extension"]
    c0, w0 = median(cold), median(warm)
    pub_warm = statistics.mean(p[1:])
    per_call = max(0, round(pub_warm - w0))
    per_conn = max(0, round(p[0] - c0 - per_call))
    model = {"per_call_ms": per_call, "per_new_connection_ms": per_conn,
             "sdk_cold_fetch_ms_at_zero_latency": r2(c0), "sdk_warm_fetch_ms_at_zero_latency": r2(w0),
             "published_without_extension_ms": p, "repeats": repeats}
    say(f"latency model: every API call waits {per_call} ms; the first call on a new connection "
        f"{per_conn} ms more (SDK here with no latency: cold {c0:.1f} ms, warm {w0:.1f} ms)")
    ctx.fake.set_latency(per_call, per_conn)
    return model


def exp_coldwarm(ctx, repeats):
    runs = {"with_extension": [], "without_extension": []}
    new_conns = {"with_extension": [], "without_extension": []}
    for r in range(repeats):
        order = ["with_extension", "without_extension"]
        if r % 2:
            order.reverse()  # alternate which goes first, so drift hits both
        for v in order:
            say(f"cold/warm: repeat {r + 1}/{repeats}, {v.replace('_', ' ')} "
                f"({ctx.invocations} invocations so far)")
            res, calls = coldwarm_once(ctx, v, f"coldwarm-{v}-{r}")
            runs[v].append(res)
            new_conns[v].append(calls["new_connections"])
    return {"repeats": repeats, "per_invoke": coldwarm_summary(runs), "runs": runs,
            "new_connections": new_conns}


def coldwarm_summary(runs):
    """Per variant and invoke position: median, min and max of each figure over the repeats."""
    summary = {}
    for v, rs in runs.items():
        summary[v] = []
        for i in range(3):
            pos = {}
            for k in ("fetch_ms", "duration_ms", "billed_ms", "init_ms", "stash_ms"):
                xs = [run[i][k] for run in rs if run[i].get(k) is not None]
                if xs:
                    pos[k] = {"median": rnd(median(xs)), "min": rnd(min(xs)), "max": rnd(max(xs))}
            summary[v].append(pos)
    return summary


# ------------------------------------------------------------------------------------------------
# Prefetch: ten cold starts of each variant, interleaved.

PREFETCH_VARIANTS = [
    ("baseline", "init-three-secrets-direct.mjs", False, {}),
    ("no_prefetch", "init-three-secrets.mjs", True, {}),
    ("prefetch", "init-three-secrets.mjs", True, {"STASH_PREFETCH_SECRETS": THREE_SECRETS}),
]


def exp_prefetch(ctx, runs_per_variant):
    runs = {v[0]: [] for v in PREFETCH_VARIANTS}
    for r in range(runs_per_variant):
        order = PREFETCH_VARIANTS[r % 3:] + PREFETCH_VARIANTS[:r % 3]
        for name, fn, stash, env in order:
            say(f"prefetch: cold start {r + 1}/{runs_per_variant}, {name} "
                f"({ctx.invocations} invocations so far)")
            ctx.fake.reset()
            label = f"prefetch-{name}-{r}"
            sim = Sim(ctx, label, fn, stash, 1, dict(SECRET_IDS=THREE_SECRETS, **env))
            try:
                ans = sim.invoke_ok()
            finally:
                envs = sim.stop()
            ctx.invocations += 1
            if len(envs) != 1 or len(envs[0]["reports"]) != 1 or envs[0]["reports"][0]["init_ms"] is None:
                raise Failure(f"{label}: expected one environment with one cold REPORT line")
            if ans.get("secrets") != 3:
                raise Failure(f"{label}: unexpected answer {ans}")
            calls = ctx.fake.calls()
            if stash:
                ctx.count(label, calls, envs)
            rep = envs[0]["reports"][0]
            runs[name].append({"init_ms": rep["init_ms"], "duration_ms": rep["duration_ms"],
                               "billed_ms": rep["billed_ms"], "init_fetch_ms": ans["initFetchMs"],
                               "GetSecretValue": calls["GetSecretValue"]})
    summary = {}
    for name, rs in runs.items():
        init = [x["init_ms"] for x in rs]
        dur = [x["duration_ms"] for x in rs]
        fetch = [x["init_fetch_ms"] for x in rs]
        summary[name] = {"init_ms_mean": r2(statistics.mean(init)), "init_ms_median": r2(median(init)),
                         "init_ms_min": r2(min(init)), "init_ms_max": r2(max(init)),
                         "duration_ms_mean": r2(statistics.mean(dur)),
                         "duration_ms_median": r2(median(dur)),
                         "init_fetch_ms_median": r2(median(fetch)),
                         "init_outside_fetch_ms_median": r2(median([a - b for a, b in zip(init, fetch)])),
                         "upstream_calls_per_start": median([x["GetSecretValue"] for x in rs])}
    return {"runs_per_variant": runs_per_variant, "summary": summary, "runs": runs}


# ------------------------------------------------------------------------------------------------
# TTL under load: open-loop arrivals following a linear ramp.

def arrival_times(duration, r0, r1):
    """Arrival k (0-based) at the time t where the ramp's cumulative count
    N(t) = r0*t + (r1-r0)*t^2/(2*duration) reaches k + 0.5: evenly spread arrivals whose rate goes
    linearly from r0 to r1 per second over duration seconds."""
    slope = (r1 - r0) / duration
    total = r0 * duration + slope * duration * duration / 2
    out = []
    for k in range(int(total + 0.5)):
        n = k + 0.5
        t = n / r0 if slope == 0 else (-r0 + math.sqrt(r0 * r0 + 2 * slope * n)) / slope
        out.append(t)
    return out


def open_loop(sim, times, label):
    """Sends an invoke at each of times (s from now) whatever the answers (open loop); returns per
    arrival (sent_s, status, ms, late_s).  An arrival the generator could not send on time (the
    machine busy) goes as soon as it can.  Progress every 5 s."""
    res = [None] * len(times)
    done = [0]
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(i):
        sent = time.monotonic() - t0
        try:
            st, _, ms = sim.invoke()
        except (OSError, http.client.HTTPException) as e:
            st, ms = f"error: {e}", None
        res[i] = (sent, st, ms, sent - times[i])
        with lock:
            done[0] += 1

    next_progress = 5.0
    with ThreadPoolExecutor(max_workers=256) as pool:
        for i, t in enumerate(times):
            while True:
                now = time.monotonic() - t0
                if now >= next_progress:
                    say(f"{label}: {now:4.0f} s of {times[-1]:.0f}, {i} invocations sent, "
                        f"{done[0]} answered, {sim.environments()} environments")
                    next_progress += 5.0
                if now >= t:
                    break
                time.sleep(min(t - now, 0.05))
            pool.submit(one, i)
    say(f"{label}: all {len(times)} invocations answered, {sim.environments()} environments")
    return res


def cpu_children():
    """CPU seconds (user + system) of the child processes waited for so far: lambda-sim waits for
    its environments' processes, so a stopped lambda-sim brings theirs."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def peak_concurrency(envs):
    """Most invokes running at once: each from its start (the function's log line) for its REPORT
    Duration.  Environments beyond it were started while others were still in their init."""
    ev = []
    for e in envs:
        inv = sorted(e["invokes"])
        durs = [r["duration_ms"] for r in e["reports"]]
        for i, ((start, _), d) in enumerate(zip(inv, durs)):
            # Duration starts when the platform hands the invoke over, a little before the
            # handler logs its start: never past the environment's next invoke.
            end = start + d if i + 1 == len(inv) else min(start + d, inv[i + 1][0])
            ev += [(start, 1), (end, -1)]
    cur = peak = 0
    for _, step in sorted(ev):
        cur += step
        peak = max(peak, cur)
    return peak


def expected_calls(envs, ttl_s):
    """What a TTL implies from this run's own figures.  `replay`: the TTL rule applied to each
    environment's own invoke times (a fetch at an invoke when the value stored by the environment's
    last fetch, at its end, is older than the TTL).  `estimate`: each environment invoked every
    T s on average over a span of S s refreshes about every TTL + T/2 s, so about
    1 + S / (TTL + T/2) calls (never more than its invokes)."""
    replay = estimate = 0.0
    gaps = []
    for e in envs:
        inv = sorted(e["invokes"])
        stored = None
        for start, fetch in inv:
            if stored is None or ttl_s == 0 or start - stored >= ttl_s * 1000:
                replay += 1
                stored = start + fetch
        n = len(inv)
        if n == 0:
            continue
        if n == 1:
            estimate += 1
            continue
        span = (inv[-1][0] - inv[0][0]) / 1000
        gap = span / (n - 1)
        gaps.append(gap)
        estimate += n if ttl_s == 0 else min(n, 1 + span / (ttl_s + gap / 2))
    return {"replay": int(replay), "estimate": round(estimate),
            "gap_s_median": r2(median(gaps)), "span_s_median": r2(median(
                [(max(i[0] for i in e["invokes"]) - min(i[0] for i in e["invokes"])) / 1000
                 for e in envs if e["invokes"]]))}


def exp_ttl(ctx, profile, busy_ms, ttls, max_envs):
    times = arrival_times(profile["duration_s"], profile["arrival_rate_per_s"],
                          profile["ramp_to_per_s"])
    out = []
    for ttl in ttls:
        label = f"TTL {ttl} s"
        say(f"TTL under load: {label}: {len(times)} arrivals over {profile['duration_s']} s, "
            f"{profile['arrival_rate_per_s']} -> {profile['ramp_to_per_s']} per second "
            f"({ctx.invocations} invocations so far)")
        ctx.fake.reset()
        cpu0 = cpu_children()
        sim = Sim(ctx, f"ttl{ttl}", "ttl-load.mjs", True, max_envs,
                  {"PARAM_NAME": PARAM_NAME, "BUSY_MS": str(busy_ms),
                   "SSM_PARAMETER_STORE_TTL": str(ttl), "SECRETS_MANAGER_TTL": str(ttl)},
                  queue_ms=120000)
        try:
            res = open_loop(sim, times, label)
        finally:
            envs = sim.stop()
        calls = ctx.fake.calls()
        emf = ctx.count(f"ttl-{ttl}", calls, envs)
        ok = [r for r in res if r[1] == 200]
        ctx.invocations += len(res)
        per_second = [0] * (int(profile["duration_s"]) + 1)
        for sent, _, _, _ in res:
            per_second[min(int(sent), len(per_second) - 1)] += 1
        if per_second[-1] == 0:
            per_second.pop()
        fetch = [f for e in envs for _, f in e["invokes"]]
        billed = [r["billed_ms"] for e in envs for r in e["reports"]]
        hits, misses = emf_hits(envs)
        out.append({
            "ttl_s": ttl, "invocations": len(ok), "refused_or_failed": len(res) - len(ok),
            "environments": len(envs),
            "upstream_calls": {k: calls[k] for k in ("GetParameter", "GetSecretValue")},
            "emf_upstream_calls": emf,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "fetch_ms_p50": r2(pct(fetch, 50)), "fetch_ms_p99": r2(pct(fetch, 99)),
            "billed_ms_p50": pct(billed, 50), "new_connections": calls["new_connections"],
            "arrivals_per_second": per_second,
            "invoke_ms_p50": r2(pct([r[2] for r in ok], 50)),
            "expected": expected_calls(envs, ttl),
            "invokes_per_env": sorted(len(e["invokes"]) for e in envs),
            "late_ms_p99": r2(1000 * pct([r[3] for r in res], 99)),
            "late_ms_max": r2(1000 * max(r[3] for r in res)),
            "peak_concurrent_invokes": peak_concurrency(envs),
            "init_ms_median": r2(median([r["init_ms"] for e in envs for r in e["reports"]
                                         if r["init_ms"] is not None])),
            "init_ms_max": r2(max([r["init_ms"] for e in envs for r in e["reports"]
                                   if r["init_ms"] is not None] or [0])),
            "cpu_s": cpu_children() - cpu0,
        })
        say(f"{label}: {len(ok)} invocations, {len(envs)} environments, "
            f"{calls['GetParameter']} GetParameter calls (EMF: {emf['GetParameter']})")
    return {"times": len(times), "busy_ms": busy_ms, "runs": out}


# ------------------------------------------------------------------------------------------------
# Charts: plain SVG, one file each, readable in a browser with nothing else.

def fmt(v):
    if v is None:
        return "-"
    if float(v).is_integer():
        return str(int(v))
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_bars(title, subtitle, ylabel, groups, series, values, log=False, whiskers=None, dots=None,
             notes=()):
    """Grouped bars: groups (x labels), series [(name, colour)], values[g][s] (None: no bar),
    whiskers[g][s] = (min, max), dots[g][s] = [values] drawn on the bar."""
    W, H = 820, 480
    left, right, top, bottom = 80, 20, 92, 70 + 16 * len(notes)
    pw, ph = W - left - right, H - top - bottom
    allv = [v for row in values for v in row if v is not None]
    for src in (whiskers or []), (dots or []):
        for row in src:
            for cell in row:
                if cell:
                    allv += [x for x in cell if x is not None]
    if log:
        lo = 10 ** math.floor(math.log10(max(min(v for v in allv if v > 0), 1e-3)))
        hi = 10 ** math.ceil(math.log10(max(allv)))
        if hi <= lo:
            hi = lo * 10
        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10

        def y(v):
            v = max(v, lo)
            return top + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        base = lo
    else:
        top_v = max(allv) * 1.12
        step = 10 ** math.floor(math.log10(top_v / 5))
        for m in (1, 2, 5, 10):
            if top_v / (step * m) <= 6:
                step *= m
                break
        hi = step * math.ceil(top_v / step)
        ticks = [i * step for i in range(int(round(hi / step)) + 1)]

        def y(v):
            return top + ph - ph * v / hi
        base = 0
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
         f'<text x="{left}" y="24" font-size="16" font-weight="bold">{esc(title)}</text>',
         f'<text x="{left}" y="44" fill="#444">{esc(subtitle)}</text>']
    # legend
    lx = left
    for name, colour in series:
        o.append(f'<rect x="{lx}" y="58" width="12" height="12" fill="{colour}" stroke="#333" '
                 f'stroke-width="0.5"/>')
        o.append(f'<text x="{lx + 17}" y="69">{esc(name)}</text>')
        lx += 30 + 7.2 * len(name)
    # axes and grid
    for t in ticks:
        yy = y(t)
        o.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{fmt(t) if t < 1 else f"{t:g}"}</text>')
    o.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#333"/>')
    o.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    o.append(f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
             f'{esc(ylabel)}{" (log scale)" if log else ""}</text>')
    gw = pw / len(groups)
    bw = min(60, gw * 0.8 / len(series))
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + (gw - bw * len(series)) / 2
        o.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 20}" text-anchor="middle" '
                 f'font-weight="bold">{esc(g)}</text>')
        for si, (name, colour) in enumerate(series):
            v = values[gi][si]
            x = x0 + si * bw
            if v is None:
                o.append(f'<text transform="translate({x + bw / 2 + 4:.1f} {top + ph - 6}) '
                         f'rotate(-90)" fill="#888" font-size="11">not published</text>')
                continue
            yy = y(v)
            o.append(f'<rect x="{x + 2:.1f}" y="{yy:.1f}" width="{bw - 4:.1f}" '
                     f'height="{max(0.5, y(base) - yy):.1f}" fill="{colour}" stroke="#333" '
                     f'stroke-width="0.5"><title>{esc(name)}, {esc(g)}: {fmt(v)}</title></rect>')
            label_y = yy - 5
            w = whiskers[gi][si] if whiskers else None
            if w:
                cx = x + bw / 2
                o.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(w[0]):.1f}" y2="{y(w[1]):.1f}" '
                         f'stroke="#000" stroke-width="1.2"/>')
                for end in w:
                    o.append(f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{y(end):.1f}" '
                             f'y2="{y(end):.1f}" stroke="#000" stroke-width="1.2"/>')
                label_y = min(label_y, y(w[1]) - 5)
            for d in (dots[gi][si] if dots and dots[gi][si] else []):
                o.append(f'<circle cx="{x + bw / 2:.1f}" cy="{y(d):.1f}" r="2.5" fill="#000" '
                         f'fill-opacity="0.55"/>')
                label_y = min(label_y, y(d) - 6)
            o.append(f'<text x="{x + bw / 2:.1f}" y="{label_y:.1f}" text-anchor="middle">{fmt(v)}</text>')
    for i, n in enumerate(notes):
        o.append(f'<text x="{left}" y="{H - 24 - 16 * (len(notes) - 1 - i)}" fill="#444" '
                 f'font-size="11">{esc(n)}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


PUB_C, OURS_C, OURS2_C, EXP_C = "#b8b8b8", "#2b6cb0", "#dd7722", "#9ccaf0"


def charts(out, res, pub):
    files = {}
    ttl = res["ttl"]["runs"]
    ptl = {r["ttl_s"]: r["GetParameter"] for r in pub["ttl"]["runs"]}
    files["reproduce-ttl.svg"] = svg_bars(
        "GetParameter calls by cache TTL", "published (AWS Compute blog) against this run "
        f"({res['ttl']['times']} open-loop arrivals per run)",
        "GetParameter calls", [f"TTL {r['ttl_s']} s" for r in ttl],
        [("published", PUB_C), ("ours (fake-aws count)", OURS_C),
         ("expected from our invoke times", EXP_C)],
        [[ptl.get(r["ttl_s"]), r["upstream_calls"]["GetParameter"], r["expected"]["replay"]]
         for r in ttl], log=True,
        notes=[f"ours: {', '.join(str(r['environments']) for r in ttl)} environments; "
               f"published: {pub['ttl']['environments']}. Expected: the TTL rule replayed over "
               "each environment's own invoke times."])
    cw = res["coldwarm"]["per_invoke"]
    pcw = pub["coldwarm"]["fetch_ms"]
    files["reproduce-coldwarm.svg"] = svg_bars(
        "Fetch time per invoke, with and without the extension",
        f"one new environment, three sequential invokes; ours: median of "
        f"{res['coldwarm']['repeats']} runs, whiskers min-max",
        "fetch time (ms)", ["invoke 1 (cold)", "invoke 2", "invoke 3"],
        [("published, extension", PUB_C), ("ours, stash", OURS_C),
         ("published, SDK in function", "#777777"), ("ours, SDK in function", OURS2_C)],
        [[pcw["with_extension"][i], cw["with_extension"][i]["fetch_ms"]["median"],
          pcw["without_extension"][i], cw["without_extension"][i]["fetch_ms"]["median"]]
         for i in range(3)],
        log=True,
        whiskers=[[None, (cw["with_extension"][i]["fetch_ms"]["min"],
                          cw["with_extension"][i]["fetch_ms"]["max"]),
                   None, (cw["without_extension"][i]["fetch_ms"]["min"],
                          cw["without_extension"][i]["fetch_ms"]["max"])] for i in range(3)],
        notes=[f"fake-aws: {res['model']['per_call_ms']} ms per call + "
               f"{res['model']['per_new_connection_ms']} ms per new connection, calibrated on "
               "the published no-extension figures."])
    pf = res["prefetch"]["summary"]
    pp = pub["prefetch"]["init_ms_mean"]
    names = [("baseline", "SDK in init"), ("no_prefetch", "stash, no prefetch"),
             ("prefetch", "stash, prefetch")]
    files["reproduce-prefetch.svg"] = svg_bars(
        "Init duration with three secrets read during init",
        f"{res['prefetch']['runs_per_variant']} cold starts per variant; ours: mean, "
        "dots: each cold start", "init duration (ms)", [n[1] for n in names],
        [("published mean (Square)", PUB_C), ("ours, mean", OURS_C)],
        [[pp.get(k), pf[k]["init_ms_mean"]] for k, _ in names],
        dots=[[None, [x["init_ms"] for x in res["prefetch"]["runs"][k]]] for k, _ in names],
        notes=["Square published a baseline and its prefetching extension; there is no "
               "published figure for the middle variant."])
    for name, text in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    return list(files)


# ------------------------------------------------------------------------------------------------
# reproduce.json (the keys the results promise) and reproduce.md.

def result_json(res, pub):
    cw = res["coldwarm"]["per_invoke"]
    return {
        "ttl": [{"ttl_s": r["ttl_s"], "invocations": r["invocations"],
                 "environments": r["environments"], "upstream_calls": r["upstream_calls"],
                 "emf_upstream_calls": r["emf_upstream_calls"], "hit_ratio": r["hit_ratio"],
                 "fetch_ms_p50": r["fetch_ms_p50"], "fetch_ms_p99": r["fetch_ms_p99"]}
                for r in res["ttl"]["runs"]],
        "coldwarm": {v: [{"fetch_ms": p["fetch_ms"]["median"], "billed_ms": p["billed_ms"]["median"]}
                         for p in cw[v]] for v in ("with_extension", "without_extension")},
        "prefetch": {k: {"init_ms_mean": s["init_ms_mean"], "init_ms_median": s["init_ms_median"],
                         "duration_ms_mean": s["duration_ms_mean"]}
                     for k, s in res["prefetch"]["summary"].items()},
        "published": pub,
    }


def shapes(doc):
    """The shapes that hold on any machine, from reproduce.json alone: [(what, holds)]."""
    t = {r["ttl_s"]: r for r in doc["ttl"]}
    gp = {k: r["upstream_calls"]["GetParameter"] for k, r in t.items()}
    cw = doc["coldwarm"]
    pf = doc["prefetch"]
    return [
        ("TTL 0: one GetParameter call per invocation", gp[0] == t[0]["invocations"]),
        ("TTL 300: one GetParameter call per environment, more than one environment",
         gp[300] == t[300]["environments"] and t[300]["environments"] > 1),
        ("TTL 1: between the two (fewer calls than invocations, more than environments)",
         t[1]["environments"] < gp[1] < t[1]["invocations"]),
        ("warm fetches through stash at least ten times faster than with the SDK",
         all(cw["with_extension"][i]["fetch_ms"] * 10 <= cw["without_extension"][i]["fetch_ms"]
             for i in (1, 2))),
        ("prefetch lowers the median init duration (against stash without prefetch and "
         "against the SDK)",
         pf["prefetch"]["init_ms_median"] < min(pf["no_prefetch"]["init_ms_median"],
                                                pf["baseline"]["init_ms_median"])),
        ("EMF counts equal fake-aws's (TTL runs)",
         all(r["emf_upstream_calls"] == r["upstream_calls"] for r in doc["ttl"])),
    ]


def spread(p):
    return f"{fmt(p['median'])} ({fmt(p['min'])}-{fmt(p['max'])})"


def report_md(res, pub, doc, meta):
    m = res["model"]
    ttl = res["ttl"]["runs"]
    t = {r["ttl_s"]: r for r in ttl}
    pt = {r["ttl_s"]: r["GetParameter"] for r in pub["ttl"]["runs"]}
    prof = res["profile"]
    o = ["# Reproducing the published comparisons", ""]
    o.append(f"{'QUICK run (scaled down; not the committed results). ' if meta['quick'] else ''}"
             f"Run of `{meta['command']}` started {meta['date']} on {meta['machine']} "
             f"({meta['cores']} cores shared with other work; the run's processes at nice "
             f"{meta['nice']}), load average "
             f"{meta['load_start']} at the start and {meta['load_end']} at the end; it took "
             f"{meta['seconds']:.0f} s for {meta['invocations']} invocations. Every figure of "
             "ours below comes from this run; the published ones come from "
             "`bench/published.json`, with their sources. Produced by `bench/reproduce.py`; "
             "the functions are in `sim/functions/`.")
    o += ["", "## The latency of fake-aws", ""]
    o.append(f"One model for every experiment: **each API call waits {m['per_call_ms']} ms, and "
             f"the first call on a new connection waits {m['per_new_connection_ms']} ms more** "
             "(the TLS handshake a real client pays). It was calibrated once, at the start of "
             "this run, against the published no-extension fetch times "
             f"({' / '.join(fmt(x) for x in m['published_without_extension_ms'])} ms): with no "
             f"latency, the AWS SDK for JavaScript v3 in the function took "
             f"{fmt(m['sdk_cold_fetch_ms_at_zero_latency'])} ms for its first fetch and "
             f"{fmt(m['sdk_warm_fetch_ms_at_zero_latency'])} ms for a warm one here (median of "
             f"{m['repeats']} runs), so the per-call wait is the mean published warm fetch less "
             "the warm SDK cost, and the per-connection wait is the published cold fetch less "
             "the cold SDK cost and one per-call wait. No jitter.")

    # --- TTL
    o += ["", "## 1. TTL under load", ""]
    o.append(f"Load: {res['ttl']['times']} open-loop arrivals per run over {prof['duration_s']:g} "
             f"s, ramping linearly from {prof['arrival_rate_per_s']:g} to "
             f"{prof['ramp_to_per_s']:g} per second (Artillery's `duration`, `arrivalRate`, "
             "`rampTo`), sent by bench/reproduce.py's own generator: arrival k is due when the "
             "ramp's cumulative count reaches k + 1/2 and is sent then, whatever earlier invokes "
             "are doing, each on its own connection; one the generator could not send on time "
             "(the machine busy) goes as soon as it can. Artillery was not used: it is a large "
             "npm tree to install for one arrival profile. The function "
             "(`sim/functions/ttl-load.mjs`) reads one parameter through stash on every invoke, "
             f"then waits (a timer, no CPU) until {res['ttl']['busy_ms']} ms have passed since the "
             "invoke began: the published environment count divided by the peak rate, so that "
             "the peak needs about the published number of environments whatever the TTL. "
             f"lambda-sim may start up to {res['ttl']['max_envs']} environments (past that an "
             "invoke would wait for an idle one, never be refused).")
    o += ["", "Arrivals sent per second, as achieved, and how late the generator sent them:", ""]
    for r in ttl:
        o.append(f"- TTL {r['ttl_s']} s: {', '.join(str(x) for x in r['arrivals_per_second'])} "
                 f"(late by {fmt(r['late_ms_p99'])} ms p99, {fmt(r['late_ms_max'])} ms at most)")
    o += ["", "| TTL | GetParameter published | GetParameter ours (fake-aws / EMF) | expected from "
          "our invoke times (replay / estimate) | invocations | environments ours (published) | "
          "peak concurrent invokes | init ms median (max) | hit ratio | fetch p50 / p99 ms | "
          "billed p50 ms | CPU s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ttl:
        refused = (f" (+{r['refused_or_failed']} refused or failed)"
                   if r["refused_or_failed"] else "")
        hit = "-" if r["hit_ratio"] is None else f"{r['hit_ratio']:.3f}"
        o.append(f"| {r['ttl_s']} s | {pt.get(r['ttl_s'], '-')} | "
                 f"{r['upstream_calls']['GetParameter']} / {r['emf_upstream_calls']['GetParameter']}"
                 f" | {r['expected']['replay']} / {r['expected']['estimate']} | "
                 f"{r['invocations']}{refused} | {r['environments']} "
                 f"({pub['ttl']['environments']}) | {r['peak_concurrent_invokes']} | "
                 f"{fmt(r['init_ms_median'])} ({fmt(r['init_ms_max'])}) | {hit} | "
                 f"{fmt(r['fetch_ms_p50'])} / {fmt(r['fetch_ms_p99'])} | {r['billed_ms_p50']} | "
                 f"{r['cpu_s']:.1f} |")
    o += ["", "CPU s: CPU time of lambda-sim and everything it ran (environments' runtimes and "
          "stash) during the run, of the machine's "
          f"{meta['cores']} x {prof['duration_s']:g} s."]
    o += ["", "![GetParameter calls by TTL](reproduce-ttl.svg)", ""]
    pub_env = pub["ttl"]["environments"]
    pub_inv = pt.get(0)
    dur = pub["ttl"]["load"]["duration_s"]
    gap_pub = pub_env * dur / pub_inv
    est_pub = pub_env * (1 + dur / (1 + gap_pub / 2))
    profile_total = round(pub["ttl"]["load"]["arrival_rate_per_s"] * dur +
                          (pub["ttl"]["load"]["ramp_to_per_s"] -
                           pub["ttl"]["load"]["arrival_rate_per_s"]) * dur / 2)
    e1 = t[1]["expected"]
    cpu_list = ", ".join(f"{r['cpu_s']:.0f}" for r in ttl)
    gp0, gp300 = t[0]["upstream_calls"]["GetParameter"], t[300]["upstream_calls"]["GetParameter"]
    same0 = gp0 == t[0]["invocations"]
    same300 = gp300 == t[300]["environments"]
    o.append(
        f"What matches: with TTL 0 {'every invocation made one call' if same0 else 'the calls did NOT equal the invocations'} "
        f"({gp0} calls for {t[0]['invocations']} invocations), and with TTL 300 "
        f"{'every environment made one' if same300 else 'the calls did NOT equal the environments'} "
        f"({gp300} calls, {t[300]['environments']} environments); in the post, TTL 300's "
        f"{pt.get(300)} calls are its {pub['ttl']['environments']} environments, and TTL 0's "
        f"{pt.get(0)} calls then one per invocation. Our invocations "
        f"({t[0]['invocations']}) are our profile's own count ({res['ttl']['times']} arrivals); "
        f"the post's {pub_inv} is {pub_inv - profile_total:+d} against the {profile_total} "
        "arrivals of its stated profile, "
        "and it does not say why. "
        f"Our environments ({', '.join(str(r['environments']) for r in ttl)} for TTL "
        f"{', '.join(str(r['ttl_s']) for r in ttl)}) are the most invokes that ran at once "
        f"({', '.join(str(r['peak_concurrent_invokes']) for r in ttl)}: the peak rate times how "
        "long an invoke holds its environment, overheads included), plus environments started "
        "while others were still in their init (a new environment took "
        f"{', '.join(fmt(r['init_ms_median']) for r in ttl)} ms to initialise, median, and up to "
        f"{', '.join(fmt(r['init_ms_max']) for r in ttl)} ms on this shared machine, where the "
        "run's own processes used "
        f"{cpu_list} "
        f"CPU seconds of the {meta['cores'] * prof['duration_s']:g} each run had). TTL 1 differs: "
        f"we counted {t[1]['upstream_calls']['GetParameter']} calls, "
        f"and our own figures predict that: {t[1]['environments']} environments, each invoked "
        f"about every {fmt(e1['gap_s_median'])} s (median) over about {fmt(e1['span_s_median'])} s, "
        f"refresh about every 1 + {fmt(e1['gap_s_median'])}/2 s, about {e1['estimate']} calls "
        "(this estimate takes one mean gap per environment, while the rate ramps); replaying the "
        f"1 s TTL over each environment's own invoke times gives {e1['replay']}. "
        f"By the same estimate the post's own figures ({pub_env} environments sharing "
        f"{pub_inv} invocations over {dur} s, so each invoked about every {gap_pub:.2f} s) imply "
        f"about {est_pub:.0f} calls with a 1 s TTL if every environment lived the whole test, "
        f"not {pt.get(1)}: {pt.get(1)} calls is one refresh per environment every "
        f"{pub_env * dur / pt.get(1):.0f} s or so. We do not know what made the published "
        "TTL 1 run refresh that rarely; we did not fit anything to it.")

    # --- cold/warm
    cw = res["coldwarm"]["per_invoke"]
    pcw = pub["coldwarm"]["fetch_ms"]
    o += ["", "## 2. Cold and warm", ""]
    o.append(f"One new environment, three sequential invokes that each fetch one secret "
             f"(`sim/functions/fetch-timing.mjs` through stash, `fetch-timing-direct.mjs` with "
             f"the AWS SDK v3 GetSecretValue); repeated {res['coldwarm']['repeats']} times, "
             "alternating which variant goes first. Ours: median (min-max). Fetch time is "
             "measured in the function; duration, billed duration and init duration are "
             "lambda-sim's REPORT lines.")
    o += ["", "| invoke | fetch ms published, extension | fetch ms ours, stash; of which in "
          "stash (EMF) | fetch ms published, SDK | fetch ms ours, SDK | duration ms stash / SDK | "
          "billed ms stash / SDK | init ms stash / SDK |", "|---|---|---|---|---|---|---|---|"]
    for i in range(3):
        w, d = cw["with_extension"][i], cw["without_extension"][i]
        init = (f"{spread(w['init_ms'])} / {spread(d['init_ms'])}" if "init_ms" in w else "-")
        o.append(f"| {i + 1}{' (cold)' if i == 0 else ''} | {fmt(pcw['with_extension'][i])} | "
                 f"{spread(w['fetch_ms'])}; {fmt(w['stash_ms']['median']) if 'stash_ms' in w else '-'} | "
                 f"{fmt(pcw['without_extension'][i])} | "
                 f"{spread(d['fetch_ms'])} | {fmt(w['duration_ms']['median'])} / "
                 f"{fmt(d['duration_ms']['median'])} | {fmt(w['billed_ms']['median'])} / "
                 f"{fmt(d['billed_ms']['median'])} | {init} |")
    o += ["", "![Fetch time per invoke](reproduce-coldwarm.svg)", ""]
    wf = [cw["with_extension"][i]["fetch_ms"]["median"] for i in range(3)]
    df = [cw["without_extension"][i]["fetch_ms"]["median"] for i in range(3)]
    nc = res["coldwarm"]["new_connections"]
    sw = cw["with_extension"]
    own_note = ""
    if all("stash_ms" in sw[i] for i in range(3)):
        own = [sw[i]["stash_ms"]["median"] for i in range(3)]
        model = m["per_call_ms"] + m["per_new_connection_ms"]
        own_note = (f": stash's own time for that request (its EMF FetchLatency, the upstream "
                    f"call included) is {fmt(own[0])} ms, {own[0] - model:.0f} ms over the "
                    f"model's wait, so {wf[0] - own[0]:.0f} ms of the {fmt(wf[0])} is the "
                    "function's HTTP client on its first use and the local round trip; on the "
                    f"warm invokes stash answers in {fmt(own[1])} and {fmt(own[2])} ms")
    o.append(
        f"What matches: without the extension our fetches ({' / '.join(fmt(x) for x in df)} ms) "
        f"sit on the published ones ({' / '.join(fmt(x) for x in pcw['without_extension'])} ms); "
        "that is by construction, since the latency model was calibrated on them (in separate "
        "runs before these), so it only shows the model holds. With stash the warm fetches "
        f"({fmt(wf[1])} and {fmt(wf[2])} ms; published {fmt(pcw['with_extension'][1])} and "
        f"{fmt(pcw['with_extension'][2])}) are a local HTTP round trip to the cache, "
        f"{df[1] / wf[1]:.0f} and {df[2] / wf[2]:.0f} times faster than the SDK's. What differs: "
        f"stash's cold fetch is {fmt(wf[0])} ms, against the post's {fmt(pcw['with_extension'][0])} "
        f"ms for AWS's extension. Ours is one upstream call on a new connection "
        f"({m['per_call_ms']} + {m['per_new_connection_ms']} ms in the model; fake-aws counted "
        f"{'/'.join(str(x) for x in sorted(set(nc['with_extension'])))} new connection(s) per stash "
        f"run) plus {wf[0] - m['per_call_ms'] - m['per_new_connection_ms']:.0f} ms of stash's miss "
        "path and the function's first local request"
        f"{own_note}; the SDK's cold fetch is the same model plus "
        f"{df[0] - m['per_call_ms'] - m['per_new_connection_ms']:.0f} ms of the SDK's own first "
        "call in a new process. The "
        f"published extension's first fetch took {pcw['with_extension'][0] / pcw['without_extension'][0]:.1f} "
        "times the published SDK's; nothing in our model (a wait per call and per new "
        "connection) produces that, so we do not reproduce it and cannot say from our figures "
        "where AWS's extension spent that time.")

    # --- prefetch
    pf = res["prefetch"]["summary"]
    pp = pub["prefetch"]
    o += ["", "## 3. Prefetch at init", ""]
    o.append(f"{res['prefetch']['runs_per_variant']} cold starts of each variant, interleaved: "
             "the function (`sim/functions/init-three-secrets*.mjs`) reads three secrets during "
             "its init (top-level await) with the SDK (baseline), through stash, and through "
             "stash started with `STASH_PREFETCH_SECRETS` naming the three. Init duration and "
             "duration are the first invoke's REPORT line.")
    o += ["", "| variant | init ms mean (published) | init ms median (min-max) | duration ms mean "
          "(published) | duration ms median | the function's three reads, ms (median) | init "
          "outside those reads, ms (median) | upstream calls per start |",
          "|---|---|---|---|---|---|---|---|"]
    label = {"baseline": "SDK in init", "no_prefetch": "stash, no prefetch",
             "prefetch": "stash, prefetch"}
    for k in ("baseline", "no_prefetch", "prefetch"):
        s = pf[k]
        o.append(f"| {label[k]} | {fmt(s['init_ms_mean'])} ({pp['init_ms_mean'].get(k, '-')}) | "
                 f"{fmt(s['init_ms_median'])} ({fmt(s['init_ms_min'])}-{fmt(s['init_ms_max'])}) | "
                 f"{fmt(s['duration_ms_mean'])} ({pp['duration_ms_mean'].get(k, '-')}) | "
                 f"{fmt(s['duration_ms_median'])} | {fmt(s['init_fetch_ms_median'])} | "
                 f"{fmt(s['init_outside_fetch_ms_median'])} | {s['upstream_calls_per_start']:g} |")
    o += ["", "![Init duration per prefetch variant](reproduce-prefetch.svg)", ""]
    b, n, p = (pf[k]["init_ms_mean"] for k in ("baseline", "no_prefetch", "prefetch"))
    pb, ppf = pp["init_ms_mean"]["baseline"], pp["init_ms_mean"]["prefetch"]
    o.append(
        f"What matches: prefetch shortens init. The post's mean init went from {pb} to {ppf} ms "
        f"({ppf - pb:+d} ms, {100 * (ppf - pb) / pb:+.0f}%); ours from {fmt(b)} (SDK) and "
        f"{fmt(n)} (stash without prefetch) to {fmt(p)} ms ({p - b:+.0f} ms, "
        f"{100 * (p - b) / b:+.0f}% against the SDK; {p - n:+.0f} ms against stash without "
        "prefetch). Why the sizes differ: with prefetch stash starts fetching the three secrets "
        "as it starts, before the runtime exists, in one BatchGetSecretValue call (Square's "
        "extension fetches them in parallel, one call each); the function's own reads then wait "
        "only for what "
        f"is left, {fmt(pf['prefetch']['init_fetch_ms_median'])} ms instead of "
        f"{fmt(pf['no_prefetch']['init_fetch_ms_median'])} (medians). The saving is the time "
        "the fetches overlap with the rest of init: the extensions' registration, the "
        "runtime's start and its module loading (the function's init outside its reads is "
        f"{fmt(pf['prefetch']['init_outside_fetch_ms_median'])} ms with stash and "
        f"{fmt(pf['baseline']['init_outside_fetch_ms_median'])} ms with the SDK, which also loads "
        "the SDK, medians). Duration: the post's mean fell from "
        f"{pp['duration_ms_mean']['baseline']} to {pp['duration_ms_mean']['prefetch']} ms; our "
        "handler only returns what init read, so its duration "
        f"({fmt(pf['baseline']['duration_ms_mean'])}, {fmt(pf['no_prefetch']['duration_ms_mean'])}, "
        f"{fmt(pf['prefetch']['duration_ms_mean'])} ms) carries no fetch in any variant and shows "
        "no effect of prefetch; the post does not describe the work its handler did.")

    # --- counting
    o += ["", "## Upstream calls, counted twice", ""]
    o.append("For every run with stash: the calls fake-aws counted against the sum of "
             "`ParameterStoreCalls` and `SecretsManagerCalls` over the EMF lines stash wrote to "
             "the environments' log streams (the init record included). The command fails when "
             "any pair differs.")
    o += ["", "| run | fake-aws SSM / Secrets Manager calls (batch calls included) | "
          "EMF ParameterStoreCalls / SecretsManagerCalls | agree |", "|---|---|---|---|"]
    for c in res["counts"]:
        o.append(f"| {c['run']} | {c['fake_aws']['GetParameter']} / {c['fake_aws']['GetSecretValue']} "
                 f"| {c['emf']['GetParameter']} / {c['emf']['GetSecretValue']} | "
                 f"{'yes' if c['agree'] else '**NO**'} |")
    o += ["", "## Shapes that hold on any machine", ""]
    for what, ok in shapes(doc):
        o.append(f"- {'holds' if ok else '**does not hold**'}: {what}")
    return "\n".join(o) + "\n"


# ------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true", help="scaled down, under a minute")
    ap.add_argument("--out", help="default: bench/results, or BUILD/reproduce with --quick")
    ap.add_argument("--repeats", type=int, help="cold/warm repeats (default 5; quick 3)")
    ap.add_argument("--render", metavar="RAW",
                    help="write the report again from a run's BUILD/reproduce/raw-*.json")
    ap.add_argument("--prefetch-runs", type=int, help="cold starts per variant (default 10; quick 5)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    out = os.path.abspath(a.out or (os.path.join(build, "reproduce") if a.quick
                                    else os.path.join(ROOT, "bench", "results")))
    with open(os.path.join(ROOT, "bench", "published.json")) as f:
        pub = json.load(f)
    if a.render:
        with open(a.render) as f:
            raw = json.load(f)
        if raw["meta"]["quick"] and not a.out:
            sys.exit("reproduce: that is a QUICK run; give --out")
        res = raw["res"]
        res["coldwarm"]["per_invoke"] = coldwarm_summary(res["coldwarm"]["runs"])
        write_outputs(out, res, pub, raw["meta"])
        return
    for p in ("extensions/stash", "bin/fake-aws", "bin/lambda-sim"):
        if not os.access(os.path.join(build, p), os.X_OK):
            sys.exit(f"reproduce: {build}/{p} is missing (make)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@aws-sdk", "client-secrets-manager")):
        sys.exit("reproduce: the AWS SDK for JavaScript is missing in tests/node (scripts/deps.sh)")

    load = dict(pub["ttl"]["load"])
    if a.quick:
        # A twelfth of the duration at 0.3 of the rate: a few environments, each invoked several
        # times a second, so TTL 0, 1 and 300 still come apart.
        load = {"duration_s": load["duration_s"] / 12, "arrival_rate_per_s": load["arrival_rate_per_s"] * 0.3,
                "ramp_to_per_s": load["ramp_to_per_s"] * 0.3}
    busy_ms = round(1000 * pub["ttl"]["environments"] / pub["ttl"]["load"]["ramp_to_per_s"])
    repeats = a.repeats or (3 if a.quick else 5)
    prefetch_runs = a.prefetch_runs or (5 if a.quick else 10)
    # Room for cold starts slowed by a busy machine (three times the peak's need); past it an
    # invoke waits for an idle environment (lambda-sim --queue-ms) instead of being refused.  A
    # QUICK run allows half as much over the need, so that even on a very busy machine each
    # environment is invoked more than once a second and TTL 1 stays apart from TTL 0.
    need = math.ceil(load["ramp_to_per_s"] * busy_ms / 1000)
    max_envs = max(4, math.ceil(need * (1.5 if a.quick else 3)))

    meta = {"quick": a.quick, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{cpu_model()}, Linux {platform.release()}", "cores": os.cpu_count(),
            "load_start": loadavg(),
            "command": "make reproduce" + (" QUICK=1" if a.quick else "")}
    say(f"{meta['command']}: started {meta['date']}, load average {meta['load_start']}, "
        f"results to {out}")
    # The run needs little CPU (a few CPU seconds per minute of load) but needs it on time: on a
    # machine shared with other work, a cold start queued behind that work turns into more
    # environments than the load asks for.  Raised a little when allowed (root); inherited by
    # every process the run starts.
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -5)
    except OSError:
        pass
    meta["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    work = tempfile.mkdtemp(prefix="stash-reproduce-")
    data = os.path.join(work, "data.json")
    with open(data, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_data.py"), "--secrets", "4",
                        "--bytes", "4096"], stdout=f, check=True)
    fake = FakeAws(build, work, data)
    ctx = Ctx(build, work, fake)
    ok = False
    try:
        res = {"profile": load}
        res["model"] = calibrate(ctx, pub, 1 if a.quick else 3)
        res["coldwarm"] = exp_coldwarm(ctx, repeats)
        res["prefetch"] = exp_prefetch(ctx, prefetch_runs)
        res["ttl"] = exp_ttl(ctx, load, busy_ms, [r["ttl_s"] for r in pub["ttl"]["runs"]], max_envs)
        res["ttl"]["max_envs"] = max_envs
        res["counts"] = ctx.counts
        ok = True
    except Failure as e:
        say(f"FAILED: {e} (work files kept in {work})")
        sys.exit(1)
    finally:
        fake.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
    meta.update(load_end=loadavg(), seconds=time.monotonic() - T_START,
                invocations=ctx.invocations)
    # Everything the report is made of, kept in the build tree (not with the results): --render
    # writes the report again from it, e.g. after its wording changed, without a new run.
    os.makedirs(os.path.join(build, "reproduce"), exist_ok=True)
    raw = os.path.join(build, "reproduce", f"raw-{'quick' if a.quick else 'full'}.json")
    with open(raw, "w") as f:
        json.dump({"res": res, "meta": meta}, f)
    write_outputs(out, res, pub, meta)
    bad = [c for c in ctx.counts if not c["agree"]]
    if bad:
        say(f"FAILED: fake-aws and the EMF lines disagree in {len(bad)} run(s): "
            f"{', '.join(c['run'] for c in bad)}")
        sys.exit(1)


def write_outputs(out, res, pub, meta):
    os.makedirs(out, exist_ok=True)
    doc = result_json(res, pub)
    with open(os.path.join(out, "reproduce.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "reproduce.md"), "w") as f:
        f.write(report_md(res, pub, doc, meta))
    names = charts(out, res, pub)
    say(f"wrote {out}/reproduce.md, reproduce.json, {', '.join(names)}")
    for r in doc["ttl"]:
        say(f"TTL {r['ttl_s']:>3} s: {r['upstream_calls']['GetParameter']:5d} GetParameter calls, "
            f"{r['invocations']} invocations, {r['environments']} environments")
    for what, holds in shapes(doc):
        say(f"{'holds' if holds else 'DOES NOT HOLD'}: {what}")
    say(f"total {meta['seconds']:.0f} s, {meta['invocations']} invocations")


if __name__ == "__main__":
    main()
