#!/usr/bin/env python3
"""A minimal Lambda extension for lambda-sim's tests (not stash).

Registers for INVOKE and SHUTDOWN (EXT_EVENTS overrides), subscribes to the Telemetry API with
an HTTP listener, and appends what happens to $EXT_REC, one line per fact:
  <epoch ns> <extension name> <fact> [details]
Facts: env (token, ports), register <status>, probe <name> <status> <errorType>,
subscribe <status>, event INVOKE <requestId> <deadlineMs> <traceValue>,
event SHUTDOWN <reason> <deadlineMs>, tele <type> <requestId or -> [json record],
next-call, exit.
Knobs (environment): EXT_REC, EXT_EVENTS (comma list), EXT_SUBSCRIBE (1), EXT_TYPES
(platform,function), EXT_PROBE (1: try malformed calls during init), EXT_HOLD_MS (work per
INVOKE before next), EXT_WAIT_RUNTIMEDONE (1: hold the invoke until runtimeDone arrives),
EXT_SHUTDOWN_IGNORE (1: never exit on SHUTDOWN), EXT_INIT_ERROR (1: report an init error
and exit), EXT_EXIT_ERROR (1: report an exit error at the first INVOKE and exit), EXT_INIT_SLEEP_MS (before register),
EXT_AFTER ("<who> <fact>": report the init error only once $EXT_REC holds such a line).
EXT_<knob>_<extension file name> overrides EXT_<knob> for one extension; EXT_PROBE may name
the one extension that probes.
"""
import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time

NAME = os.path.basename(sys.argv[0])
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
REC = os.environ.get("EXT_REC", "/dev/null")
lock = threading.Lock()
seen = {}  # (type, requestId) -> count
cond = threading.Condition(lock)


def rec(*parts):
    line = "%d %s %s\n" % (time.time_ns(), NAME, " ".join(str(p) for p in parts))
    with open(REC, "a") as f:
        f.write(line)


def call(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(API, timeout=None)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def err_type(data):
    try:
        return json.loads(data).get("errorType", "-")
    except Exception:
        return "-"


class Listener(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.send_response(200)
        self.end_headers()
        try:
            events = json.loads(body)
        except Exception:
            rec("tele-bad-batch", len(body))
            return
        rec("batch", len(events))
        for ev in events:
            r = ev.get("record")
            rid = r.get("requestId", "-") if isinstance(r, dict) else "-"
            rec("tele", ev.get("type"), rid, json.dumps(ev, separators=(",", ":")))
            with cond:
                seen[(ev.get("type"), rid)] = seen.get((ev.get("type"), rid), 0) + 1
                cond.notify_all()


def wait_seen(typ, rid, timeout):
    end = time.time() + timeout
    with cond:
        while (typ, rid) not in seen and time.time() < end:
            cond.wait(end - time.time())
        return (typ, rid) in seen


def recorded(who, fact, timeout):
    """Waits until $EXT_REC holds a line of `who` with `fact`; False after timeout seconds."""
    end = time.time() + timeout
    while True:
        with open(REC, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == who and parts[2] == fact:
                    return True
        if time.time() >= end:
            return False
        time.sleep(0.02)


def knob(name, default):
    """EXT_<name>_<extension file name> wins over EXT_<name>."""
    return os.environ.get("EXT_%s_%s" % (name, NAME), os.environ.get("EXT_" + name, default))


def main():
    rec("env", os.getpid(), os.environ.get("AWS_SESSION_TOKEN", "-"), API,
        os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "-"),
        "task_root=" + os.environ.get("LAMBDA_TASK_ROOT", "hidden"))
    time.sleep(int(knob("INIT_SLEEP_MS", "0")) / 1000.0)
    events = [e for e in knob("EVENTS", "INVOKE,SHUTDOWN").split(",") if e]
    probe = knob("PROBE", "0") in ("1", NAME)
    if probe:
        s, _, d = call("POST", "/2020-01-01/extension/register", json.dumps({"events": events}))
        rec("probe", "register-noname", s, err_type(d))
        s, _, d = call("POST", "/2020-01-01/extension/register", b"{not json",
                       {"Lambda-Extension-Name": NAME})
        rec("probe", "register-badjson", s, err_type(d))
        s, _, d = call("POST", "/2020-01-01/extension/register",
                       json.dumps({"events": ["INVOKE", "BOGUS"]}), {"Lambda-Extension-Name": NAME})
        rec("probe", "register-badevent", s, err_type(d))
    s, h, d = call("POST", "/2020-01-01/extension/register", json.dumps({"events": events}),
                   {"Lambda-Extension-Name": NAME, "Lambda-Extension-Accept-Feature": "accountId"})
    ext_id = h.get("lambda-extension-identifier", "")
    rec("register", s, d.decode().strip())
    idh = {"Lambda-Extension-Identifier": ext_id}
    if knob("INIT_ERROR", "0") == "1":
        after = knob("AFTER", "").split()
        if len(after) == 2:
            recorded(after[0], after[1], 30.0)
        s, _, d = call("POST", "/2020-01-01/extension/init/error",
                       json.dumps({"errorMessage": "bad config", "errorType": "ConfigInvalid"}),
                       dict(idh, **{"Lambda-Extension-Function-Error-Type":
                                    "Extension.ConfigInvalid"}))
        rec("init-error", s, d.decode().strip())
        s, _, d = call("GET", "/2020-01-01/extension/event/next", None, idh)
        rec("probe", "next-after-init-error", s, err_type(d))
        sys.exit(1)
    if probe:
        s, _, d = call("POST", "/2020-01-01/extension/register", json.dumps({"events": events}),
                       {"Lambda-Extension-Name": NAME})
        rec("probe", "register-again", s, err_type(d))
        s, _, d = call("GET", "/2020-01-01/extension/event/next")
        rec("probe", "next-noid", s, err_type(d))
        s, _, d = call("GET", "/2020-01-01/extension/event/next", None,
                       {"Lambda-Extension-Identifier": "not-a-uuid"})
        rec("probe", "next-badid", s, err_type(d))
        s, _, d = call("GET", "/2020-01-01/extension/event/next", None,
                       {"Lambda-Extension-Identifier": "00000000-0000-4000-8000-000000000000"})
        rec("probe", "next-unknownid", s, err_type(d))
        s, _, d = call("POST", "/2020-01-01/extension/init/error", b"{}", idh)
        rec("probe", "initerror-noheader", s, err_type(d))
    port = 0
    if knob("SUBSCRIBE", "1") == "1":
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
        port = srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        types = knob("TYPES", "platform,function").split(",")

        def sub(body, headers=idh):
            s, _, d = call("PUT", "/2022-07-01/telemetry", json.dumps(body), headers)
            return s, err_type(d), d

        good = {"schemaVersion": "2022-12-13", "types": types,
                "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
                "destination": {"protocol": "HTTP",
                                "URI": "http://sandbox.localdomain:%d/telemetry" % port}}
        if probe:
            def variant(path, value):
                b = json.loads(json.dumps(good))
                o = b
                for k in path[:-1]:
                    o = o[k]
                if value is None:
                    del o[path[-1]]
                else:
                    o[path[-1]] = value
                return b
            cases = [
                ("sub-noid", good, {}),
                ("sub-unknownid", good,
                 {"Lambda-Extension-Identifier": "00000000-0000-4000-8000-000000000000"}),
                ("sub-badschema", variant(["schemaVersion"], "2021-01-01"), idh),
                ("sub-noschema", variant(["schemaVersion"], None), idh),
                ("sub-notypes", variant(["types"], []), idh),
                ("sub-badtype", variant(["types"], ["platform", "bogus"]), idh),
                ("sub-items-low", variant(["buffering", "maxItems"], 999), idh),
                ("sub-items-high", variant(["buffering", "maxItems"], 10001), idh),
                ("sub-bytes-low", variant(["buffering", "maxBytes"], 262143), idh),
                ("sub-bytes-high", variant(["buffering", "maxBytes"], 1048577), idh),
                ("sub-timeout-low", variant(["buffering", "timeoutMs"], 24), idh),
                ("sub-timeout-high", variant(["buffering", "timeoutMs"], 30001), idh),
                ("sub-https", variant(["destination", "protocol"], "HTTPS"), idh),
                ("sub-badhost", variant(["destination", "URI"], "http://example.com:%d/" % port),
                 idh),
                ("sub-noport", variant(["destination", "URI"], "http://sandbox.localdomain/x"),
                 idh),
                ("sub-nodest", variant(["destination"], None), idh),
            ]
            for name, body, hdrs in cases:
                s, t, _ = sub(body, hdrs)
                rec("probe", name, s, t)
            s, _, d = call("PUT", "/2022-07-01/telemetry", b"[1,2", idh)
            rec("probe", "sub-badjson", s, err_type(d))
            s, t, _ = sub(variant(["schemaVersion"], "2025-01-29"), idh)
            rec("probe", "sub-2025", s, t)
        s, t, d = sub(good)
        rec("subscribe", s, d.decode().strip())
    hold = int(knob("HOLD_MS", "0")) / 1000.0
    wait_rd = knob("WAIT_RUNTIMEDONE", "0") == "1"
    last = None
    probed_late = False
    while True:
        rec("next-call")
        s, h, d = call("GET", "/2020-01-01/extension/event/next", None, idh)
        if s != 200:
            rec("next-error", s, err_type(d))
            time.sleep(0.2)
            continue
        ev = json.loads(d)
        if ev["eventType"] == "INVOKE":
            last = ev["requestId"]
            tr = ev.get("tracing", {}).get("value", "-")
            rec("event", "INVOKE", last, ev["deadlineMs"], tr,
                h.get("lambda-extension-event-identifier", "-"))
            print("extension %s saw invoke %s" % (NAME, last), flush=True)
            if knob("EXIT_ERROR", "0") == "1":
                s2, _, d2 = call("POST", "/2020-01-01/extension/exit/error", b"{}",
                                 dict(idh, **{"Lambda-Extension-Function-Error-Type":
                                              "Extension.Broken"}))
                rec("exit-error", s2, d2.decode().strip())
                sys.exit(1)
            if probe and not probed_late:
                probed_late = True
                s2, _, d2 = call("POST", "/2020-01-01/extension/register",
                                 json.dumps({"events": events}), {"Lambda-Extension-Name": NAME})
                rec("probe", "register-after-init", s2, err_type(d2))
                if port:
                    s2, _, d2 = call("PUT", "/2022-07-01/telemetry", json.dumps(good), idh)
                    rec("probe", "sub-after-init", s2, err_type(d2))
            if wait_rd:
                # Generous: the runtime may take long on a loaded machine (the bogus invoke makes
                # seven calls first); the wait ends as soon as runtimeDone is in.
                ok = wait_seen("platform.runtimeDone", last, 10.0)
                rec("runtimedone-before-next", last, ok)
            if hold:
                time.sleep(hold)
        else:
            rec("event", "SHUTDOWN", ev.get("shutdownReason"), ev.get("deadlineMs"))
            if probe:
                # After SHUTDOWN no event comes: a next waits; a second one meanwhile is a 403.
                threading.Thread(target=lambda: call("GET", "/2020-01-01/extension/event/next",
                                                     None, idh), daemon=True).start()
                time.sleep(0.1)
                s2, _, d2 = call("GET", "/2020-01-01/extension/event/next", None, idh)
                rec("probe", "next-concurrent", s2, err_type(d2))
            if os.environ.get("EXT_SHUTDOWN_IGNORE") == "1":
                while True:
                    time.sleep(1)
            if last:
                ok = wait_seen("platform.report", last, 1.0)
                rec("report-at-shutdown", last, ok)
            rec("exit")
            sys.exit(0)


if __name__ == "__main__":
    main()
