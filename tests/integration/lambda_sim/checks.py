#!/usr/bin/env python3
"""Assertions over what lambda-sim's test extension and runtime recorded.

usage: checks.py SCENARIO ARGS...   (see tests/integration/lambda_sim.sh)
Prints one "ok - ..." or "not ok - ..." line per assertion.
"""
import datetime
import glob
import json
import math
import os
import re
import sys

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def iso_ms(text):
    """YYYY-MM-DDTHH:MM:SS.mmmZ -> epoch milliseconds."""
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000 + t.microsecond // 1000


def out(ok, desc, detail=""):
    print(("ok - " if ok else "not ok - ") + desc)
    if not ok and detail:
        for line in str(detail).splitlines()[:8]:
            print("   " + line)


def load(path):
    recs = []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        parts = line.split(" ", 3)
        if len(parts) < 3 or not parts[0].isdigit():
            # A writer killed at the deadline (SIGKILL) may leave a torn line.
            print("# skipped a torn record line: %r" % line[:80])
            continue
        r = {"ns": int(parts[0]), "who": parts[1], "fact": parts[2],
             "rest": parts[3] if len(parts) > 3 else ""}
        if r["fact"] == "tele":
            typ, rid, js = r["rest"].split(" ", 2)
            r["type"], r["rid"], r["ev"] = typ, rid, json.loads(js)
        else:
            r["args"] = r["rest"].split(" ") if r["rest"] else []
        recs.append(r)
    return recs


def facts(recs, who, fact):
    return [r for r in recs if r["who"] == who and r["fact"] == fact]


def tele(recs, who, typ=None, rid=None):
    return [r for r in recs if r["who"] == who and r["fact"] == "tele"
            and (typ is None or r["type"] == typ) and (rid is None or r["rid"] == rid)]


def probes(recs, who):
    return {r["args"][0]: (int(r["args"][1]), r["args"][2] if len(r["args"]) > 2 else "-")
            for r in facts(recs, who, "probe")}


def check_probes(recs, who, want):
    got = probes(recs, who)
    for name, (status, etype) in want.items():
        g = got.get(name)
        out(g is not None and g[0] == status and (etype is None or g[1] == etype),
            "%s %s: %d %s" % (who, name, status, etype or ""), "got %r" % (g,))


def lifecycle(rec_path, caller_path, logs_dir):
    recs = load(rec_path)
    check_probes(recs, "alpha", {
        "register-noname": (403, "Extension.InvalidExtensionName"),
        "register-badjson": (403, "InvalidRequestFormat"),
        "register-badevent": (403, "Extension.InvalidEventType"),
        "register-again": (403, "Extension.InvalidExtensionState"),
        "next-noid": (403, "Extension.MissingExtensionIdentifier"),
        "next-badid": (403, "Extension.InvalidExtensionIdentifier"),
        "next-unknownid": (403, "Extension.UnknownExtensionIdentifier"),
        "initerror-noheader": (403, "Extension.MissingHeader"),
        "sub-noid": (403, "Extension.MissingExtensionIdentifier"),
        "sub-unknownid": (403, "Extension.UnknownExtensionIdentifier"),
        "sub-badschema": (400, "ValidationError"),
        "sub-noschema": (400, "ValidationError"),
        "sub-notypes": (400, "ValidationError"),
        "sub-badtype": (400, "ValidationError"),
        "sub-items-low": (400, "ValidationError"),
        "sub-items-high": (400, "ValidationError"),
        "sub-bytes-low": (400, "ValidationError"),
        "sub-bytes-high": (400, "ValidationError"),
        "sub-timeout-low": (400, "ValidationError"),
        "sub-timeout-high": (400, "ValidationError"),
        "sub-https": (400, "ValidationError"),
        "sub-badhost": (400, "ValidationError"),
        "sub-noport": (400, "ValidationError"),
        "sub-nodest": (400, "ValidationError"),
        "sub-badjson": (400, "ValidationError"),
        "sub-2025": (200, None),
        "next-concurrent": (403, "Extension.InvalidExtensionState"),
        "register-after-init": (403, "Extension.RegistrationClosed"),
        "sub-after-init": (403, "Telemetry.SubscriptionClosed"),
    })
    check_probes(recs, "runtime", {
        "next": (403, "InvalidStateTransition"),
        "wrongid": (400, "InvalidRequestID"),
        "badsuffix": (404, None),
        "nopath": (404, None),
        "initerr": (403, "InvalidStateTransition"),
        "register": (403, "Extension.RegistrationClosed"),
        "badmode": (400, "InvalidFunctionResponseMode"),
        "twice": (403, "InvalidStateTransition"),
    })
    reg = facts(recs, "alpha", "register")
    body = json.loads(reg[0]["rest"].split(" ", 1)[1]) if reg else {}
    out(reg and reg[0]["args"][0] == "200" and body.get("functionName") == "lifecycle-fn"
        and body.get("functionVersion") == "$LATEST" and body.get("accountId") == "123456789012"
        and "handler" in body, "register: 200 with functionName, version, handler, accountId",
        reg)
    sub = facts(recs, "alpha", "subscribe")
    out(sub and sub[0]["args"][0] == "200" and sub[0]["args"][1] == '"OK"',
        "subscribe: 200 \"OK\"", sub)

    rt_env = facts(recs, "runtime", "env")
    a_env = facts(recs, "alpha", "env")
    out(len(rt_env) == 1 and len(a_env) == 1, "one environment for sequential invokes")
    a = rt_env[0]["args"]
    out(a[0] == a_env[0]["args"][1] and len(a[0]) >= 32,
        "runtime and extension share the environment's AWS_SESSION_TOKEN")
    out(a[1] == a_env[0]["args"][2] and a[1].startswith("127.0.0.1:"),
        "AWS_LAMBDA_RUNTIME_API is 127.0.0.1:<port> for both")
    out(a[2] == a_env[0]["args"][3] and a[2].isdigit(),
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT set, the same for both")
    out(a[3].startswith("20") and "[$LATEST]" in a[3], "AWS_LAMBDA_LOG_STREAM_NAME", a[3])
    out(a[6:11] == ["lifecycle-fn", "256", "us-east-1", "on-demand", "extra-value"],
        "function name, memory, region, init type, --env values reach the runtime", a)
    out(a_env[0]["args"][4] == "task_root=hidden", "LAMBDA_TASK_ROOT hidden from extensions",
        a_env[0]["args"])

    # init: the runtime starts only after every extension registered
    beta_env = facts(recs, "beta", "env")
    out(beta_env and rt_env[0]["ns"] > beta_env[0]["ns"] + 290 * 1000000,
        "runtime launched only after the late extension registered (registration barrier)")

    invokes = facts(recs, "alpha", "event")
    inv = [r for r in invokes if r["args"][0] == "INVOKE"]
    got = {r["args"][0]: r for r in facts(recs, "runtime", "got")}
    out(len(inv) == 4, "alpha got 4 INVOKE events", len(inv))
    ids = [r["args"][1] for r in inv]
    for i, r in enumerate(inv):
        rid = r["args"][1]
        g = got.get(rid)
        out(g is not None and r["ns"] < g["ns"],
            "invoke %d: INVOKE reached the extension before the runtime's next returned" % (i + 1))
        out(g is not None and r["args"][2] == g["args"][1],
            "invoke %d: same deadline in INVOKE and Lambda-Runtime-Deadline-Ms" % (i + 1))
        out(g is not None and r["args"][3] == g["args"][2] and r["args"][3].startswith("Root=1-"),
            "invoke %d: same trace id in INVOKE tracing and Lambda-Runtime-Trace-Id" % (i + 1))
        # "now" is the invoke's start, which platform.start carries to the millisecond: the
        # deadline is exactly 5000 ms later, whatever the INVOKE took to arrive on a loaded
        # machine (it arrived after the start, and before the deadline).
        st = tele(recs, "alpha", "platform.start", rid)
        start_ms = iso_ms(st[0]["ev"]["time"]) if st else None
        dl = int(r["args"][2])
        out(start_ms is not None and dl == start_ms + 5000
            and start_ms <= r["ns"] // 1000000 < dl,
            "invoke %d: deadline is now + --timeout" % (i + 1), (dl, start_ms, r["ns"]))
    evids = [r["args"][4] for r in inv]
    out(len(set(evids)) == len(evids) and all(re.match(r"^[0-9a-f-]{36}$", e) for e in evids),
        "Lambda-Extension-Event-Identifier: a fresh UUID per event")

    # the caller is answered while the extension still works on the invoke
    callers = [int(l.split()[0]) for l in open(caller_path) if " answered " in l]
    sending = [int(l.split()[0]) for l in open(caller_path) if " sending " in l]
    sigterm = [int(l.split()[0]) for l in open(caller_path) if " sigterm" in l]
    nexts = facts(recs, "alpha", "next-call")
    for i in range(2):
        after = [n["ns"] for n in nexts if n["ns"] > inv[i]["ns"]]
        out(after and callers[i] < after[0],
            "invoke %d: caller answered before the extension called next" % (i + 1))
    rdb = facts(recs, "alpha", "runtimedone-before-next")
    out(len(rdb) == 4 and all(r["args"][1] == "True" for r in rdb),
        "platform.runtimeDone arrives while the extension holds the invoke", rdb)

    # the freeze: report N arrives only after INVOKE N+1 (or SHUTDOWN)
    shut = [r for r in facts(recs, "alpha", "event") if r["args"][0] == "SHUTDOWN"]
    plat = [t for t in tele(recs, "alpha") if t["type"].startswith("platform.")]
    for i, rid in enumerate(ids):
        rep = tele(recs, "alpha", "platform.report", rid)
        # Not before the next invoke was even sent (the environment was frozen meanwhile)...
        nxt = sending[i + 1] if i + 1 < len(inv) else (sigterm[0] if sigterm else None)
        out(len(rep) == 1 and nxt is not None and rep[0]["ns"] > nxt,
            "freeze: report of invoke %d delivered only after %s" %
            (i + 1, "invoke %d was sent" % (i + 2) if i + 1 < len(inv) else "SIGTERM (shutdown)"),
            (rep[0]["ns"] if rep else None, nxt))
        # ...and before the next invoke's platform.start, as Lambda produced them.
        if i + 1 < len(inv):
            ri = [k for k, t in enumerate(plat) if t["type"] == "platform.report"
                  and t["rid"] == rid]
            si = [k for k, t in enumerate(plat) if t["type"] == "platform.start"
                  and t["rid"] == ids[i + 1]]
            out(ri and si and ri[0] < si[0],
                "report of invoke %d comes before platform.start of invoke %d" % (i + 1, i + 2))
    ras = facts(recs, "alpha", "report-at-shutdown")
    out(ras and ras[0]["args"] == [ids[-1], "True"], "last report received during SHUTDOWN", ras)

    # event shapes
    allt = tele(recs, "alpha")
    bad = [t["ev"] for t in allt if not ISO.match(t["ev"].get("time", ""))]
    out(not bad, "every event time is YYYY-MM-DDTHH:MM:SS.mmmZ", bad[:1])
    spans = [s for t in allt if isinstance(t["ev"]["record"], dict)
             for s in t["ev"]["record"].get("spans", [])]
    out(spans and all(ISO.match(s["start"]) and set(s) == {"name", "start", "durationMs"}
                      for s in spans), "every span is {name,start,durationMs} with an ISO start")
    order = [t["type"] for t in allt if t["type"].startswith("platform.")]

    def idx(typ, rid=None):
        for i, t in enumerate([t for t in allt if t["type"].startswith("platform.")]):
            if t["type"] == typ and (rid is None or t["rid"] == rid):
                return i
        return -1
    seq = [idx("platform.initStart"), idx("platform.telemetrySubscription"),
           idx("platform.initRuntimeDone"), idx("platform.extension"),
           idx("platform.initReport"), idx("platform.start", ids[0]),
           idx("platform.runtimeDone", ids[0]), idx("platform.report", ids[0])]
    out(all(x >= 0 for x in seq) and seq == sorted(seq),
        "order: initStart, telemetrySubscription, initRuntimeDone, extension, initReport, start, "
        "runtimeDone, report", order[:12])
    ist = tele(recs, "alpha", "platform.initStart")
    r = ist[0]["ev"]["record"] if ist else {}
    out(len(ist) == 1 and r.get("functionName") == "lifecycle-fn" and r.get("phase") == "init"
        and r.get("initializationType") == "on-demand" and r.get("functionVersion") == "$LATEST"
        and r.get("instanceMaxMemory") == 256 * 1024 * 1024,
        "initStart (emitted before the subscription) replayed with its fields", r)
    subs = [t["ev"]["record"] for t in tele(recs, "alpha", "platform.telemetrySubscription")]
    out(any(s == {"name": "alpha", "state": "Subscribed",
                  "types": ["platform", "function", "extension"]} for s in subs)
        and any(s.get("name") == "beta" for s in subs),
        "telemetrySubscription for each subscriber", subs)
    exts = {t["ev"]["record"]["name"]: t["ev"]["record"]
            for t in tele(recs, "alpha", "platform.extension")}
    out(exts.get("alpha", {}).get("events") == ["INVOKE", "SHUTDOWN"]
        and exts.get("beta", {}).get("events") == ["SHUTDOWN"]
        and all(e["state"] == "Ready" for e in exts.values()),
        "platform.extension per extension: name, state Ready, events", exts)
    ir = tele(recs, "alpha", "platform.initReport")
    irr = ir[0]["ev"]["record"] if ir else {}
    out(irr.get("status") == "success" and irr.get("phase") == "init"
        and irr.get("metrics", {}).get("durationMs", 0) > 0, "initReport: success, durationMs",
        irr)
    init_ms = irr.get("metrics", {}).get("durationMs", 0)
    st = tele(recs, "alpha", "platform.start", ids[0])
    out(st and st[0]["ev"]["record"] == {
        "requestId": ids[0], "version": "$LATEST",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:lifecycle-fn"},
        "platform.start: requestId, version, functionArn", st[0]["ev"] if st else None)
    caller1 = open(os.path.join(os.path.dirname(caller_path), "inv1.b"), "rb").read()
    for i, rid in enumerate(ids[:2]):
        rd = tele(recs, "alpha", "platform.runtimeDone", rid)
        rdr = rd[0]["ev"]["record"] if rd else {}
        names = [s["name"] for s in rdr.get("spans", [])]
        m = rdr.get("metrics", {})
        total = sum(s["durationMs"] for s in rdr.get("spans", []))
        out(rdr.get("status") == "success"
            and names == ["responseLatency", "responseDuration", "runtimeOverhead"]
            and abs(total - m.get("durationMs", -1)) < 0.01,
            "invoke %d: runtimeDone success, spans add up to durationMs" % (i + 1), rdr)
        if i == 0:
            out(m.get("producedBytes") == len(caller1), "runtimeDone producedBytes = response size",
                (m, len(caller1)))
        rp = tele(recs, "alpha", "platform.report", rid)
        rpr = rp[0]["ev"]["record"] if rp else {}
        m = rpr.get("metrics", {})
        eo = [s for s in rpr.get("spans", []) if s["name"] == "extensionOverhead"]
        want_billed = math.ceil(round(m.get("durationMs", 0) + (init_ms if i == 0 else 0), 3))
        out(rpr.get("status") == "success" and m.get("memorySizeMB") == 256
            and m.get("maxMemoryUsedMB", 0) >= 1 and ("initDurationMs" in m) == (i == 0),
            "invoke %d: report status, memorySizeMB, maxMemoryUsedMB, initDurationMs %s" %
            (i + 1, "present" if i == 0 else "absent"), rpr)
        out(i != 0 or m.get("initDurationMs") == init_ms, "initDurationMs = initReport durationMs",
            (m, init_ms))
        out(m.get("billedDurationMs") == want_billed,
            "invoke %d: billedDurationMs = ceil(duration%s)" % (i + 1, " + init" if i == 0 else ""),
            (m, want_billed))
        out(eo and eo[0]["durationMs"] >= 380
            and m.get("durationMs", 0) + 0.01 >= eo[0]["durationMs"]
            + rdr.get("metrics", {}).get("durationMs", 0) - 0.5,
            "invoke %d: extensionOverhead measured (the 400 ms hold) and inside durationMs" %
            (i + 1), (eo, m))
    rd3 = tele(recs, "alpha", "platform.runtimeDone", ids[2])
    rp3 = tele(recs, "alpha", "platform.report", ids[2])
    out(rd3 and rd3[0]["ev"]["record"].get("status") == "error"
        and rd3[0]["ev"]["record"].get("errorType") == "Function.Boom"
        and rp3 and rp3[0]["ev"]["record"].get("status") == "error",
        "function error: runtimeDone and report status error, errorType from the runtime",
        rd3[0]["ev"] if rd3 else None)
    fl = [t["ev"]["record"] for t in tele(recs, "alpha", "function")]
    out(("function handling %s\n" % ids[0]) in fl, "function log lines delivered as strings",
        fl[:3])
    el = [t["ev"]["record"] for t in tele(recs, "alpha", "extension")]
    out(("extension alpha saw invoke %s\n" % ids[0]) in el, "extension log lines delivered", el[:3])
    beta = tele(recs, "beta")
    out(beta and all(t["type"].startswith("platform.") for t in beta)
        and len(tele(recs, "beta", "platform.report")) >= 3,
        "second subscriber (platform only) gets its own stream", len(beta))
    batches = [int(r["args"][0]) for r in facts(recs, "alpha", "batch")]
    out(batches and max(batches) > 1 and len(batches) < len(allt),
        "events are batched (timeoutMs 25)", batches[:10])

    # SHUTDOWN spindown
    for who in ("alpha", "beta"):
        sh = [r for r in facts(recs, who, "event") if r["args"][0] == "SHUTDOWN"]
        ok = sh and sh[0]["args"][1] == "spindown"
        budget = (int(sh[0]["args"][2]) - sh[0]["ns"] / 1e6) if ok else -1
        out(ok and 1000 < budget <= 2001, "%s: SHUTDOWN spindown, deadline within 2000 ms" % who,
            (sh, budget))
    sig = facts(recs, "runtime", "sigterm")
    out(sig and sh and sig[0]["ns"] < sh[0]["ns"], "runtime gets SIGTERM before SHUTDOWN goes out")

    # the log stream
    files = glob.glob(os.path.join(logs_dir, "*.log"))
    out(len(files) == 1, "one log stream file for one environment", files)
    text = open(files[0]).read() if files else ""
    for rid in ids:
        out(("START RequestId: %s Version: $LATEST\n" % rid) in text
            and ("END RequestId: %s\n" % rid) in text
            and re.search(r"REPORT RequestId: %s\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
                          r"Memory Size: 256 MB\tMax Memory Used: \d+ MB\t" % rid, text),
            "log stream: START, END, REPORT for %s" % rid)
    out(text.count("Init Duration:") == 1 and "INIT_START" in text
        and "EXTENSION\tName: alpha\tState: Ready\tEvents: [INVOKE, SHUTDOWN]" in text,
        "log stream: INIT_START, EXTENSION lines, Init Duration once")
    out(("function handling %s\n" % ids[0]) in text and "extension alpha saw invoke" in text,
        "log stream holds what the runtime and the extensions print")


def concurrency(rec_path, logs_dir, *bodies):
    recs = load(rec_path)
    rt = facts(recs, "runtime", "env")
    ex = facts(recs, "gamma", "env")
    toks = [r["args"][0] for r in rt]
    out(len(rt) == 3 and len(set(toks)) == 3, "3 environments, 3 distinct session tokens", toks)
    out(len({r["args"][1] for r in rt}) == 3, "each environment has its own Runtime API port")
    out(len({r["args"][2] for r in rt}) == 3, "each environment has its own extension port")
    out(sorted(toks) == sorted(r["args"][1] for r in ex),
        "each environment's extension has that environment's token")
    out(all(any(e["args"][2] == r["args"][1] and e["args"][1] == r["args"][0] for e in ex)
            for r in rt), "extension and runtime of an environment share its API")
    resp = [json.load(open(b)) for b in bodies]
    out(len({r["token"] for r in resp[:3]}) == 3, "the 3 concurrent invokes ran in 3 environments")
    out(resp[3]["token"] in {r["token"] for r in resp[:3]},
        "a later invoke reuses an idle environment (no 4th init)")
    files = sorted(glob.glob(os.path.join(logs_dir, "*.log")))
    out(len(files) == 3, "3 log streams", files)
    texts = [open(f).read() for f in files]
    for r in resp[:3]:
        hits = [t for t in texts if r["id"] in t]
        out(len(hits) == 1, "request %s appears in exactly one log stream" % r["id"][:8])
    out(all(t.count("START RequestId") >= 1 for t in texts), "each stream has its own invokes")


def resets(rec_path, logs_dir, t1, t2, t3):
    recs = load(rec_path)
    sh = [r for r in facts(recs, "delta", "event") if r["args"][0] == "SHUTDOWN"]
    reasons = [r["args"][1] for r in sh]
    out(reasons[:2] == ["timeout", "failure"], "SHUTDOWN timeout, then failure", reasons)
    out(len(reasons) == 3 and reasons[2] == "spindown", "then spindown at the end", reasons)
    rt = facts(recs, "runtime", "env")
    out(len(rt) == 3 and len({r["args"][0] for r in rt}) == 3,
        "each reset is followed by a fresh init (new token)", len(rt))
    files = glob.glob(os.path.join(logs_dir, "*.log"))
    out(len(files) == 3, "a new log stream per environment", files)
    rid1 = re.search(r"RequestId: ([0-9a-f-]{36})", open(t1).read())
    rid2 = re.search(r"RequestId: ([0-9a-f-]{36})", open(t2).read())
    rid1 = rid1.group(1) if rid1 else "?"
    rid2 = rid2.group(1) if rid2 else "?"
    rd = tele(recs, "delta", "platform.runtimeDone", rid1)
    rp = tele(recs, "delta", "platform.report", rid1)
    out(rd and rd[0]["ev"]["record"]["status"] == "timeout" and rp
        and rp[0]["ev"]["record"]["status"] == "timeout",
        "timeout: runtimeDone and report status timeout", rd[0]["ev"] if rd else None)
    out(rp and rp[0]["ev"]["record"]["metrics"]["durationMs"] >= 1990,
        "timeout: report durationMs covers the timeout")
    ras = facts(recs, "delta", "report-at-shutdown")
    out(ras and ras[0]["args"] == [rid1, "True"], "timeout: report delivered during SHUTDOWN", ras)
    rd = tele(recs, "delta", "platform.runtimeDone", rid2)
    rp = tele(recs, "delta", "platform.report", rid2)
    out(rd and rd[0]["ev"]["record"]["status"] == "failure"
        and rd[0]["ev"]["record"].get("errorType") == "Runtime.ExitError" and rp
        and rp[0]["ev"]["record"]["status"] == "failure",
        "crash: runtimeDone and report status failure, Runtime.ExitError",
        rd[0]["ev"] if rd else None)
    inits = tele(recs, "delta", "platform.initStart")
    out(len(inits) == 3, "initStart for each of the 3 inits", len(inits))
    text = "".join(open(f).read() for f in files)
    out("Task timed out after 2.00 seconds" in text and "Status: timeout" in text,
        "log stream: timeout line and REPORT Status: timeout")
    out("Runtime exited with error: exit status 3" in text and "Status: failure" in text,
        "log stream: Runtime.ExitError and REPORT Status: failure")


def stubborn(rec_path):
    recs = load(rec_path)
    sh = [r for r in facts(recs, "stubborn", "event") if r["args"][0] == "SHUTDOWN"]
    out(sh and sh[0]["args"][1] == "spindown", "stubborn extension got SHUTDOWN spindown")
    sub = facts(recs, "stubborn", "subscribe")
    out(sub and sub[0]["args"][0] == "202" and "Telemetry.NotSupported" in sub[0]["rest"],
        "--telemetry off: subscription answered 202 Telemetry.NotSupported", sub)
    pid = int(facts(recs, "stubborn", "env")[0]["args"][0])
    alive = os.path.exists("/proc/%d" % pid)
    if alive:
        try:
            alive = open("/proc/%d/stat" % pid).read().split(") ")[1][0] != "Z"
        except OSError:
            alive = False
    out(not alive, "the extension that ignored SHUTDOWN was killed")


if __name__ == "__main__":
    {"lifecycle": lifecycle, "concurrency": concurrency, "resets": resets,
     "stubborn": stubborn}[sys.argv[1]](*sys.argv[2:])
