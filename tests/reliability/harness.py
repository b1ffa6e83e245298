#!/usr/bin/env python3
"""tests/reliability/harness.py: stash under abuse and faults (`make reliability`).

    harness.py [--quick] [--build DIR] [--asan-build DIR] [--out-json F] [--out-md F]
               [--only SECTION[,SECTION...]]

Sections, each a list of checks printed as "ok - ..." / "not ok - ...", then one
"N passed, N failed" line (tests/run.sh reads it); the exit status is 1 if any check failed.
  hostile   requests over raw sockets: NUL bytes, encodings, sizes, methods, framing; every
            one must get a defined answer and stash must keep serving
  limits    STASH_MAX_INBOUND_CONNECTIONS: sequential connections at a limit of 1, 429 over
            the limit, /ping over the limit
  flood     slow-loris and idle connections held open while a well-behaved client opening a
            new connection per request is measured
  upstream  the fault matrix: fake-aws's control endpoints (fail, throttle, hang) and a small
            misbehaving TCP upstream (garbage, truncation, huge and endless bodies, drips,
            resets, redirects, wrong field types)
  signals   SIGTERM and SHUTDOWN (a minimal Extensions API) under load: every request
            answered, exit 0, EMF written; SIGTERM in Lambda mode
  agent     agent mode writes EMF lines (aggregate by default)
  soak      the ASan build under mixed load for SOAK_SECONDS (default 120; QUICK: 15): every
            request answered, RSS plateaus, EMF upstream counts equal fake-aws's, no secret in
            any output
Everything listens on and talks to 127.0.0.1 only; every loop is bounded by time or count.
The full run writes the figures to bench/results/reliability.{json,md}.
"""
import argparse
import http.server
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "reliability", "data.json")
AKID = "AKIDEXAMPLE"
SKEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "rlb-session-token-%d" % os.getpid()

# ---- results -------------------------------------------------------------------------------

PASSED = 0
FAILED = 0
FIG = {}  # figures for the results files


def check(desc, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok - " + desc, flush=True)
    else:
        FAILED += 1
        print("not ok - " + desc, flush=True)
        if detail:
            for line in str(detail).splitlines()[:15]:
                print("#   " + line, flush=True)
    return cond


def note(msg):
    print("# " + msg, flush=True)


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


# ---- processes -----------------------------------------------------------------------------

TMP = tempfile.mkdtemp(prefix="stash-reliability-")
PROCS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, secs=15.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Proc:
    def __init__(self, name, argv, env=None, stdin=None):
        self.name = name
        self.log = os.path.join(TMP, name + ".log")
        self.out = os.path.join(TMP, name + ".out")
        self.p = subprocess.Popen(argv, env=env, stdout=open(self.out, "wb"),
                                  stderr=open(self.log, "wb"), stdin=stdin or subprocess.DEVNULL)
        PROCS.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, wait=10.0):
        if self.alive():
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            return self.p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None

    def text(self):
        parts = []
        for f in (self.log, self.out):
            try:
                with open(f, "rb") as fh:
                    parts.append(fh.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(parts)

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.p.pid) as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None


def stop_all():
    for p in PROCS:
        if p.alive():
            p.p.kill()
            p.p.wait()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def check_sanitizers():
    """Every stash process the harness ran: no sanitizer report in its output."""
    bad = [p.name for p in PROCS if not p.name.startswith("fake-aws") and
           any(m in p.text() for m in SANITIZER_MARKS)]
    check("no sanitizer report in the output of any of the %d processes run" % len(PROCS),
          not bad, "reports in: %s" % bad)


class FakeAws:
    def __init__(self, build):
        self.port = free_port()
        self.proc = Proc("fake-aws-%d" % self.port,
                         [os.path.join(build, "bin", "fake-aws"), "--port", str(self.port),
                          "--data", DATA, "--region", "us-east-1", "--access-key", AKID,
                          "--secret-key", SKEY, "--session-token", TOKEN])
        if not wait_port(self.port):
            raise RuntimeError("fake-aws did not start: " + self.proc.text())
        self.url = "http://127.0.0.1:%d" % self.port

    def ctl(self, path, **q):
        qs = urllib.parse.urlencode(q)
        s, _, body = request(self.port, "POST", "/_fake/" + path + ("?" + qs if qs else ""),
                             token=None)
        return s

    def stats(self):
        s, _, body = request(self.port, "GET", "/_fake/stats", token=None)
        return json.loads(body)


def stash_env(port, endpoint, extra=None):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": SKEY,
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_ENDPOINT_URL": endpoint,
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(port),
        "STASH_MAX_ATTEMPTS": "1",
    }
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra or {})
    return env


def start_stash(binary, name, endpoint, extra=None, port=None):
    port = port or free_port()
    proc = Proc(name, [binary], env=stash_env(port, endpoint, extra))
    if not wait_port(port):
        raise RuntimeError("stash did not start: " + proc.text())
    return proc, port


# ---- raw HTTP ------------------------------------------------------------------------------


def read_response(sock, deadline):
    """Reads one HTTP response; returns (status|None, headers dict, body bytes, error|None)."""
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, {}, data, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None, {}, data, "timeout"
        except ConnectionResetError:
            return None, {}, data, "reset"
        except OSError as e:
            return None, {}, data, "error %s" % e
        if not chunk:
            return None, {}, data, "closed" if not data else "truncated head"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}, data, "bad status line"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    n = int(headers.get("content-length", "0") or 0)
    while len(body) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return status, headers, body, "timeout in body"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return status, headers, body, "body cut"
        if not chunk:
            return status, headers, body, "body cut"
        body += chunk
    return status, headers, body, None


def raw(port, payload, timeout=5.0):
    """Sends bytes on a new connection; returns (status|None, headers, body, error)."""
    deadline = time.monotonic() + timeout
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return None, {}, b"", "connect: %s" % e
    try:
        s.sendall(payload)
        return read_response(s, deadline)
    except ConnectionResetError:
        return None, {}, b"", "reset"
    except OSError as e:
        return None, {}, b"", "error %s" % e
    finally:
        s.close()


def request(port, method, target, token=TOKEN, headers=None, timeout=5.0):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, target)
    if token:
        h += "X-Aws-Parameters-Secrets-Token: %s\r\n" % token
    for k, v in (headers or {}).items():
        h += "%s: %s\r\n" % (k, v)
    status, hdrs, body, err = raw(port, (h + "\r\n").encode(), timeout)
    return status, hdrs, body


def jtype(body):
    try:
        return json.loads(body).get("__type")
    except (ValueError, AttributeError):
        return None


def secret_values():
    with open(DATA) as fh:
        d = json.load(fh)
    vals = []
    for s in d["Secrets"]:
        for v in s["Versions"]:
            if "SecretString" in v:
                vals.append(v["SecretString"])
    for p in d["Parameters"]:
        vals.append(p["Value"])
    return vals + [SKEY, TOKEN]


def no_secret(desc, text):
    leaked = [v for v in secret_values() if v in text]
    check(desc, not leaked, "leaked: %s" % [v[:12] + "..." for v in leaked])


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- hostile requests ----------------------------------------------------------------------


def hostile_cases():
    t = "X-Aws-Parameters-Secrets-Token: %s\r\n" % TOKEN
    H = "Host: x\r\n" + t
    many_args = "&".join("a%d=1" % i for i in range(2000))
    cases = [
        # (name, payload, expected statuses (None: any defined answer))
        ("raw NUL in the query", b"GET /secretsmanager/get?secretId=hot\x00/../k001 HTTP/1.1\r\n"
         + H.encode() + b"\r\n", {400}),
        ("raw NUL in the /v1 path", b"GET /v1/hot\x00zzz HTTP/1.1\r\n" + H.encode() + b"\r\n",
         {400}),
        ("raw NUL in a parameter name",
         b"GET /systemsmanager/parameters/get?name=/rlb/hot\x00x HTTP/1.1\r\n" + H.encode()
         + b"\r\n", {400}),
        ("encoded NUL %00", ("GET /v1/hot%00zzz HTTP/1.1\r\n" + H + "\r\n").encode(), {400}),
        ("2000 query parameters",
         ("GET /secretsmanager/get?secretId=hot&%s HTTP/1.1\r\n%s\r\n" % (many_args, H)).encode(),
         {413}),
        ("65 query parameters",
         ("GET /secretsmanager/get?secretId=hot&%s HTTP/1.1\r\n%s\r\n"
          % ("&".join("b%d" % i for i in range(64)), H)).encode(), {413}),
        ("200 headers", ("GET /ping HTTP/1.1\r\nHost: x\r\n" + "".join(
            "X-H%d: v\r\n" % i for i in range(200)) + "\r\n").encode(), {413, 431}),
        ("URL of 100 KB", ("GET /v1/" + "a" * 100000 + " HTTP/1.1\r\n" + H + "\r\n").encode(),
         {413, 414, 431}),
        ("header of 70 KB", ("GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + "b" * 70000
                             + "\r\n\r\n").encode(), {413, 431}),
        ("binary garbage", bytes(random.Random(7).randrange(256) for _ in range(512))
         + b"\r\n\r\n", None),
        ("no HTTP version", b"GET /ping\r\n\r\n", None),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None),
        ("unknown method", ("BREW /ping HTTP/1.1\r\n" + H + "\r\n").encode(), {405, 400, 501}),
        ("POST with a body", ("POST /secretsmanager/get?secretId=hot HTTP/1.1\r\n" + H
                              + "Content-Length: 5\r\n\r\nhello").encode(), {405}),
        ("GET with a chunked body", ("GET /ping HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked"
                                     "\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode(), {200, 400}),
        ("content-length and chunked", ("GET /ping HTTP/1.1\r\n" + H + "Content-Length: 3\r\n"
                                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode(),
         {200, 400}),
        ("negative content-length", ("GET /ping HTTP/1.1\r\n" + H
                                     + "Content-Length: -1\r\n\r\n").encode(), {400}),
        ("huge content-length", ("GET /ping HTTP/1.1\r\n" + H
                                 + "Content-Length: 99999999999999999999\r\n\r\n").encode(),
         {400, 413}),
        ("header without colon", ("GET /ping HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n").encode(),
         {200, 400}),
        ("obsolete line folding", ("GET /ping HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n")
         .encode(), {200, 400}),
        ("bare LF line ends", b"GET /ping HTTP/1.1\nHost: x\n\n", {200, 400}),
        ("missing Host on HTTP/1.1", b"GET /ping HTTP/1.1\r\n\r\n", {200, 400}),
        ("HTTP/1.0", b"GET /ping HTTP/1.0\r\n\r\n", {200}),
        ("HTTP/9.9", b"GET /ping HTTP/9.9\r\nHost: x\r\n\r\n", {200, 400, 505}),
        ("bad percent encoding", ("GET /v1/%zz%4 HTTP/1.1\r\n" + H + "\r\n").encode(),
         {400, 404, 200, 502}),
        ("dot segments", ("GET /v1/../ping HTTP/1.1\r\n" + H + "\r\n").encode(),
         {400, 404, 502}),
        ("absolute-form target", ("GET http://evil.example/ping HTTP/1.1\r\n" + H + "\r\n")
         .encode(), {200, 400, 404}),
        ("X-Forwarded-For", ("GET /v1/hot HTTP/1.1\r\n" + H + "X-Forwarded-For: 1.2.3.4\r\n\r\n")
         .encode(), {400}),
        ("token twice, one wrong", ("GET /v1/hot HTTP/1.1\r\n" + H
                                    + "X-Aws-Parameters-Secrets-Token: nope\r\n\r\n").encode(),
         {200, 401}),
        ("empty token", b"GET /v1/hot HTTP/1.1\r\nHost: x\r\n"
         b"X-Aws-Parameters-Secrets-Token: \r\n\r\n", {401}),
        ("id of 3000 bytes", ("GET /v1/" + "i" * 3000 + " HTTP/1.1\r\n" + H + "\r\n").encode(),
         {400}),
        ("versionId and versionStage", ("GET /v1/hot?versionId=a&versionStage=b HTTP/1.1\r\n"
                                        + H + "\r\n").encode(), {400}),
        ("refreshNow=maybe", ("GET /v1/hot?refreshNow=maybe HTTP/1.1\r\n" + H + "\r\n").encode(),
         {400}),
        ("control bytes in the id", ("GET /v1/a%01%1b%7f HTTP/1.1\r\n" + H + "\r\n").encode(),
         {400, 404, 502}),
        ("UTF-8 overlong in the id", ("GET /v1/%c0%ae%c0%ae HTTP/1.1\r\n" + H + "\r\n").encode(),
         {400, 404, 502}),
        ("pipelined pings", b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n" * 50, {200}),
        ("request line of spaces", b"          \r\n\r\n", None),
        # Empty lines before a request line are skipped (RFC 9112 section 2.2): the connection
        # is then an idle one, which the idle deadline ends.
        ("lone CRLFs", b"\r\n" * 1000, "idle"),
    ]
    return cases


def section_hostile(args, fake):
    proc, port = start_stash(args.stash, "hostile", fake.url,
                             {"STASH_PREFETCH_SECRETS": "hot,k001"})
    time.sleep(0.3)
    cases = hostile_cases()
    tried = 0
    defined = 0
    for name, payload, want in cases:
        tried += 1
        status, hdrs, body, err = raw(port, payload, timeout=1.0 if want == "idle" else 5.0)
        if want is None or want == "idle":
            ok = status is not None or err in ("closed", "reset") or (
                want == "idle" and err == "timeout")
            check("hostile: %s gets an answer or a clean close (%s)" % (name, status or err), ok)
        else:
            ok = status in want
            check("hostile: %s answers %s (got %s)" % (name, sorted(want), status or err), ok,
                  body[:200])
        if status is not None:
            defined += 1
        if status == 200 and b"rlb-secret-k001" in body:
            check("hostile: %s does not serve another secret" % name, False)
        s2, _, b2 = request(port, "GET", "/ping", token=None)
        if s2 != 200:
            check("hostile: stash still serves after %s" % name, False, proc.text()[-2000:])
    check("hostile: stash alive after %d hostile requests" % tried, proc.alive(), proc.text()[-2000:])
    s, _, b = request(port, "GET", "/v1/hot")
    check("hostile: the hot secret is still served right", s == 200 and b"rlb-secret-hot" in b)
    rc = proc.stop()
    check("hostile: SIGTERM exits 0", rc == 0, "exit %s" % rc)
    no_secret("hostile: no secret in stash's output", proc.text())
    FIG["hostile"] = {"inputs_tried": tried, "answered_with_status": defined}


# ---- connection limits ---------------------------------------------------------------------


def section_limits(args, fake):
    proc, port = start_stash(args.stash, "limit1", fake.url,
                             {"STASH_MAX_INBOUND_CONNECTIONS": "1"})
    time.sleep(0.3)
    n = 40
    good = 0
    fails = []
    for i in range(n):
        s, _, b = request(port, "GET", "/ping", token=None)
        if s == 200:
            good += 1
        else:
            fails.append(s)
    check("limits: at STASH_MAX_INBOUND_CONNECTIONS=1, %d sequential connections all served "
          "(%d)" % (n, good), good == n, "statuses: %s" % fails[:10])
    proc.stop()

    limit = 20
    proc, port = start_stash(args.stash, "limit20", fake.url,
                             {"STASH_MAX_INBOUND_CONNECTIONS": str(limit),
                              "STASH_PREFETCH_SECRETS": "hot"})
    time.sleep(0.3)
    held = []
    for _ in range(limit):
        held.append(socket.create_connection(("127.0.0.1", port)))
    time.sleep(0.3)
    s, h, b = request(port, "GET", "/v1/hot")
    check("limits: over the limit a request gets 429 TooManyRequestsException (got %s)" % s,
          s == 429 and jtype(b) == "TooManyRequestsException", b[:200])
    check("limits: the 429 carries Retry-After", s == 429 and "retry-after" in h)
    s, _, b = request(port, "GET", "/ping", token=None)
    check("limits: /ping answers 200 over the limit (got %s)" % s, s == 200)
    for c in held[:5]:
        c.close()
    ok = False
    for _ in range(50):
        time.sleep(0.05)
        s, _, b = request(port, "GET", "/v1/hot")
        if s == 200:
            ok = True
            break
    check("limits: served again once connections close", ok)
    for c in held[5:]:
        c.close()
    check("limits: a WARN names STASH_MAX_INBOUND_CONNECTIONS",
          "STASH_MAX_INBOUND_CONNECTIONS" in proc.text())
    proc.stop()

    # Lambda's descriptor limit (1024, soft and hard): the default limit is lowered to fit, with
    # a WARN, and a connection past it still gets its 429.
    port = free_port()
    proc = Proc("limit-nofile", ["prlimit", "--nofile=1024:1024", args.stash],
                env=stash_env(port, fake.url))
    if not wait_port(port):
        check("limits: stash starts with 1024 descriptors", False, proc.text())
        return
    time.sleep(0.3)
    check("limits: with 1024 descriptors the limit is lowered to 900, with a WARN",
          "at most 900 connections" in proc.text() and "WARN api: STASH_MAX_INBOUND_CONNECTIONS"
          in proc.text(), proc.text()[-800:])
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(900)]
    time.sleep(0.5)
    s, _, b = request(port, "GET", "/v1/hot")
    check("limits: the 901st connection gets 429 (got %s)" % s, s == 429)
    for c in held:
        c.close()
    proc.stop()


# ---- floods --------------------------------------------------------------------------------


ATTACKER = r"""
import json, select, socket, sys, time
port, want_loris, want_idle, seconds = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                        float(sys.argv[4]))
ep = select.epoll()
conns = {}  # fd -> [socket, is_loris, request line sent]
closed = 0
failed = 0
samples = []

def open_one(loris):
    global failed
    s = socket.socket()
    s.setblocking(False)
    if s.connect_ex(("127.0.0.1", port)) not in (0, 115):
        failed += 1
        s.close()
        return
    conns[s.fileno()] = [s, loris, False]
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)

def fill():
    nl = sum(1 for c in conns.values() if c[1])
    for _ in range(want_loris - nl):
        open_one(True)
    for _ in range(want_idle - (len(conns) - nl)):
        open_one(False)

fill()
end = time.monotonic() + seconds
last_drip = 0.0
ep.register(0, select.EPOLLIN | select.EPOLLHUP)  # stdin: closed by the harness when done
done = False
while time.monotonic() < end and not done:
    for fd, ev in ep.poll(0.05):
        if fd == 0:
            done = True
            continue
        if fd not in conns:
            continue
        s = conns[fd][0]
        try:
            d = s.recv(4096)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            d = b""
        if not d:
            ep.unregister(fd)
            del conns[fd]
            s.close()
            closed += 1
    now = time.monotonic()
    if now - last_drip >= 1.0:
        last_drip = now
        for c in list(conns.values()):
            if c[1]:
                try:
                    # The request line once (the head then starts), then one header byte a second.
                    c[0].send(b"X" if c[2] else b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    c[2] = True
                except OSError:
                    pass
        fill()
        samples.append(len(conns))
        if len(samples) == 1:
            print("READY", flush=True)
print(json.dumps({"samples": samples, "closed": closed, "failed": failed}), flush=True)
"""


class Attacker:
    """Holds `loris` slow-loris connections (the request line, then a header byte every second
    each) and `idle` connections that send nothing, reopening any the server closes, for
    `seconds`.  A process of its own, so it never competes with the measured client for
    Python's interpreter lock."""

    def __init__(self, port, loris, idle, seconds):
        self.p = subprocess.Popen([sys.executable, "-c", ATTACKER, str(port), str(loris),
                                   str(idle), str(seconds)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.result = {}

    def wait_ready(self, secs=30):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            line = self.p.stdout.readline()
            if not line or line.startswith("READY"):
                return bool(line)
        return False

    def finish(self):
        out, _ = self.p.communicate(input="", timeout=120)
        for line in out.splitlines():
            if line.startswith("{"):
                self.result = json.loads(line)
        return self.result


def good_client(port, seconds, path="/v1/hot"):
    statuses = {}
    lat = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        s, _, b = request(port, "GET", path, timeout=5.0)
        lat.append((time.monotonic() - t0) * 1000.0)
        statuses[s] = statuses.get(s, 0) + 1
        n += 1
        time.sleep(0.005)
    return n, statuses, lat


def section_flood(args, fake):
    nofile = raise_nofile()
    loris, idle = (1000, 3000)
    if nofile < loris + idle + 500:
        loris, idle = max(10, (nofile - 500) // 4), max(10, 3 * (nofile - 500) // 4)
        note("fd limit %d: holding %d slow-loris and %d idle connections" % (nofile, loris, idle))
    proc, port = start_stash(args.stash, "flood", fake.url, {"STASH_PREFETCH_SECRETS": "hot"})
    time.sleep(0.3)
    n0, st0, lat0 = good_client(port, 1.0)
    secs = 5.0 if args.quick else 30.0
    rss0 = proc.rss_kb()
    att = Attacker(port, loris, idle, secs + 6.0)
    att.wait_ready()
    time.sleep(2.5)  # the slow-loris heads are under way
    n, st, lat = good_client(port, secs)
    rss1 = proc.rss_kb()
    ping_n, ping_st, _ = good_client(port, 1.0, path="/ping")
    res = att.finish()
    held = res.get("samples", [])[2:] or [0]
    ok200 = st.get(200, 0)
    rate = ok200 / float(n) if n else 0.0
    p50, p99 = pct(lat, 50), pct(lat, 99)
    FIG["flood"] = {
        "slow_loris": loris, "idle": idle, "seconds": secs,
        "held_median": statistics.median(held) if held else 0,
        "held_max": max(held) if held else 0,
        "closed_by_server": res.get("closed", 0), "rss_kb_before": rss0, "rss_kb_during": rss1,
        "good_requests": n, "good_statuses": {str(k): v for k, v in st.items()},
        "good_success_rate": rate, "good_p50_ms": p50, "good_p99_ms": p99,
        "quiet_p50_ms": pct(lat0, 50), "quiet_p99_ms": pct(lat0, 99),
        "ping_statuses": {str(k): v for k, v in ping_st.items()},
    }
    note("flood: held median %s of %d; good client %d requests, %.2f%% 200, p50 %.2f ms, "
         "p99 %.2f ms (quiet: p99 %.2f ms)" % (FIG["flood"]["held_median"], loris + idle, n,
                                                100 * rate, p50 or -1, p99 or -1,
                                                pct(lat0, 99) or -1))
    check("flood: the attacker held its %d connections (median %s)" % (loris + idle,
                                                                      FIG["flood"]["held_median"]),
          FIG["flood"]["held_median"] >= 0.9 * (loris + idle))
    check("flood: a new-connection-per-request client gets >= 99%% 200s (%.2f%%, %s)"
          % (100 * rate, st), rate >= 0.99)
    # The p99 target (10 ms) is asserted on the full run; QUICK runs inside `make test` on a
    # shared machine, where it only has to show no request waits on the attackers.
    limit = 1000.0 if args.quick else 10.0
    check("flood: the good client's p99 is under %g ms (%.2f ms)" % (limit, p99 or -1),
          p99 is not None and p99 < limit)
    check("flood: /ping answers during the flood (%s)" % ping_st,
          ping_st.get(200, 0) == ping_n)
    check("flood: stash alive", proc.alive(), proc.text()[-2000:])
    rc = proc.stop()
    check("flood: SIGTERM exits 0 after the flood", rc == 0, "exit %s" % rc)


# ---- upstream faults -----------------------------------------------------------------------


class BadUpstream:
    """A TCP server that reads one HTTP request and misbehaves as the SecretId asks:
    mode-garbage, mode-truncated, mode-huge, mode-endless, mode-drip, mode-reset, mode-redirect,
    mode-nullname, mode-objectvalue, mode-good, mode-slowhead, mode-close, mode-http09."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stop_ev = threading.Event()
        self.calls = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        self.sock.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def stop(self):
        self.stop_ev.set()
        self.sock.close()

    def serve(self, c):
        c.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                d = c.recv(65536)
                if not d:
                    return
                data += d
            head, _, body = data.partition(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            while len(body) < n:
                d = c.recv(65536)
                if not d:
                    return
                body += d
            try:
                req = json.loads(body)
            except ValueError:
                req = {}
            mode = str(req.get("SecretId") or req.get("Name") or "")
            with self.lock:
                self.calls[mode] = self.calls.get(mode, 0) + 1
            self.behave(c, mode)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def ok(self, c, obj, extra=b""):
        b = json.dumps(obj).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                  b"Content-Length: %d\r\n%s\r\n" % (len(b), extra) + b)

    def behave(self, c, mode):
        end = time.monotonic() + 120  # every misbehaviour stops by itself
        if mode == "mode-garbage":
            c.sendall(bytes(random.Random(3).randrange(256) for _ in range(4096)))
        elif mode == "mode-truncated":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"Name\":\"x\",")
        elif mode == "mode-huge":
            n = 3 * 1024 * 1024
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            chunk = b" " * 65536
            sent = 0
            while sent < n:
                c.sendall(chunk)
                sent += len(chunk)
        elif mode == "mode-endless":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while time.monotonic() < end and not self.stop_ev.is_set():
                c.sendall(b"10000\r\n" + b" " * 65536 + b"\r\n")
        elif mode == "mode-drip":
            msg = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b" " * 100000
            for i in range(len(msg)):
                if time.monotonic() > end or self.stop_ev.is_set():
                    break
                c.sendall(msg[i:i + 1])
                time.sleep(0.5)
        elif mode == "mode-slowhead":
            time.sleep(min(60, end - time.monotonic()))
        elif mode == "mode-reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif mode == "mode-close":
            pass
        elif mode == "mode-redirect":
            c.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n"
                      b"Content-Length: 0\r\n\r\n")
        elif mode == "mode-http09":
            c.sendall(b"{\"Name\":\"x\",\"SecretString\":\"y\"}")
        elif mode == "mode-nullname":
            self.ok(c, {"ARN": "a", "Name": None, "SecretString": "bad", "VersionId": "v"})
        elif mode == "mode-objectvalue":
            self.ok(c, {"ARN": "a", "Name": "n", "SecretString": {"x": 1}, "VersionId": "v"})
        elif mode == "mode-hugeheader":
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"h" * 200000 + b"\r\n\r\n")
        else:
            self.ok(c, {"ARN": "arn:" + mode, "Name": mode, "SecretString": "rlb-secret-good-"
                        + mode, "VersionId": "v1", "VersionStages": ["AWSCURRENT"]})


def section_upstream(args, fake):
    results = []
    # fake-aws's own faults, with a good value cached first where stale rules apply.
    proc, port = start_stash(args.stash, "faults", fake.url,
                             {"SECRETS_MANAGER_TTL": "1", "SECRETS_MANAGER_TIMEOUT_MILLIS": "700",
                              "STASH_MAX_ATTEMPTS": "2"})
    time.sleep(0.2)
    matrix = [
        ("500 on every attempt", "fail", {"op": "GetSecretValue", "status": 500, "count": 4}, 500),
        ("503 on every attempt", "fail", {"op": "GetSecretValue", "status": 503,
                                          "type": "ServiceUnavailable", "count": 4}, 503),
        ("throttled on every attempt", "throttle", {"op": "GetSecretValue", "count": 4}, 429),
        ("hang past the deadline", "hang", {"op": "GetSecretValue", "count": 4, "ms": 3000}, 504),
        ("403 AccessDenied", "fail", {"op": "GetSecretValue", "status": 400,
                                      "type": "AccessDeniedException", "count": 4}, 400),
    ]
    for i, (name, what, q, want) in enumerate(matrix):
        key = "k%03d" % (i + 1)
        fake.ctl("reset")
        fake.ctl(what, **q)
        s, h, b = request(port, "GET", "/v1/" + key, timeout=10)
        ok = check("upstream: %s, nothing cached: %s (got %s)" % (name, want, s), s == want, b[:200])
        results.append({"fault": name, "status": s, "ok": ok})
        if want == 429:
            check("upstream: 429 carries Retry-After", "retry-after" in h)
        fake.ctl("reset")
        s, _, b = request(port, "GET", "/v1/" + key)
        check("upstream: after %s clears, a plain read is served (%s)" % (name, s), s == 200)
        if want >= 429:
            time.sleep(1.1)  # expire it
            fake.ctl(what, **q)
            s, _, b = request(port, "GET", "/v1/" + key, timeout=10)
            ok = check("upstream: %s with an expired value cached: stale 200 (got %s)" % (name, s),
                       s == 200 and b"rlb-secret-" + key.encode() in b, b[:200])
            results.append({"fault": name + ", stale value cached", "status": s, "ok": ok})
            s, _, b = request(port, "GET", "/v1/%s?refreshNow=true" % key, timeout=10)
            ok = check("upstream: %s on refreshNow answers the error, not the old value (got %s)"
                       % (name, s), s == want, b[:200])
            results.append({"fault": name + ", refreshNow", "status": s, "ok": ok})
            fake.ctl("reset")
    # refreshNow refused (AccessDenied) leaves the entry: the next plain read is a hit.
    fake.ctl("reset")
    s, _, b = request(port, "GET", "/v1/k010")
    c0 = fake.stats()["ops"]["GetSecretValue"]["calls"]
    fake.ctl("fail", op="GetSecretValue", status=400, type="AccessDeniedException", count=2)
    s1, _, _ = request(port, "GET", "/v1/k010?refreshNow=true")
    s2, _, b2 = request(port, "GET", "/v1/k010")
    c1 = fake.stats()["ops"]["GetSecretValue"]["calls"]
    check("upstream: refreshNow refused answers 400, the next plain read is a hit (%s, %s, %d "
          "calls)" % (s1, s2, c1 - c0), s1 == 400 and s2 == 200 and c1 - c0 == 1)
    fake.ctl("reset")
    proc.stop()
    no_secret("upstream: no secret in stash's output (fake-aws faults)", proc.text())

    bad = BadUpstream()
    proc, port = start_stash(args.stash, "badupstream", bad.url,
                             {"SECRETS_MANAGER_TTL": "1", "STASH_MAX_ATTEMPTS": "1"})
    time.sleep(0.2)
    # The drip runs alongside the rest: it takes the longest.  No overall timeout is set.
    drip = {}

    def run_drip():
        t0 = time.monotonic()
        s, _, b = request(port, "GET", "/v1/mode-drip", timeout=70)
        drip["status"] = s
        drip["secs"] = time.monotonic() - t0

    dt = threading.Thread(target=run_drip, daemon=True)
    dt.start()
    cases = [
        ("garbage bytes", "mode-garbage", {502}),
        ("truncated body", "mode-truncated", {502}),
        ("3 MiB body", "mode-huge", {502}),
        ("endless chunked body", "mode-endless", {502}),
        ("reset at once", "mode-reset", {502}),
        ("closed without answer", "mode-close", {502}),
        ("302 redirect", "mode-redirect", {502}),
        ("HTTP/0.9-style answer", "mode-http09", {502}),
        ("header of 200 KB", "mode-hugeheader", {502}),
        ("200 with a null Name", "mode-nullname", {502}),
        ("200 with an object SecretString", "mode-objectvalue", {502}),
    ]
    for name, mode, want in cases:
        t0 = time.monotonic()
        s, _, b = request(port, "GET", "/v1/" + mode, timeout=60)
        ok = check("upstream: %s: %s (got %s in %.1f s)" % (name, sorted(want), s,
                                                             time.monotonic() - t0),
                   s in want and jtype(b) == "ConnectionError", b[:200])
        results.append({"fault": name, "status": s, "ok": ok})
    # A good value, then a wrong-typed 200 once it expired: the good value is kept and served.
    s, _, b = request(port, "GET", "/v1/mode-good-then-bad")
    check("upstream: a good value first (%s)" % s, s == 200)
    time.sleep(1.1)
    bad_behave = bad.behave

    def flip(c, mode):
        bad_behave(c, "mode-nullname" if mode == "mode-good-then-bad" else mode)

    bad.behave = flip
    s, _, b = request(port, "GET", "/v1/mode-good-then-bad")
    ok = check("upstream: a wrong-typed 200 after a good value: the good value, stale (%s)" % s,
               s == 200 and b"rlb-secret-good-mode-good-then-bad" in b, b[:200])
    results.append({"fault": "wrong-typed 200 with a good value cached", "status": s, "ok": ok})
    bad.behave = bad_behave
    dt.join(timeout=100)
    ok = check("upstream: an answer dripping 2 bytes/s is cut off with no overall timeout "
               "(%s after %.0f s)" % (drip.get("status"), drip.get("secs", -1)),
               drip.get("status") in (502, 504) and drip.get("secs", 999) < 30)
    results.append({"fault": "drip 2 bytes/s, no timeout", "status": drip.get("status"),
                    "seconds": round(drip.get("secs", -1), 1), "ok": ok})
    check("upstream: stash alive after the matrix", proc.alive(), proc.text()[-2000:])
    proc.stop()
    bad.stop()
    FIG["upstream"] = {"faults": results,
                       "survived": sum(1 for r in results if r["ok"]), "tried": len(results)}


# ---- SIGTERM and SHUTDOWN ------------------------------------------------------------------


class ExtensionsApi:
    """The Extensions API as far as stash uses it: register, event/next (INVOKE once, then
    SHUTDOWN when shutdown() is called), init/exit errors, and the Telemetry API (refused with
    202 as emulators do, so stash runs without platform reports)."""

    def __init__(self):
        api = self
        self.shutdown_ev = threading.Event()
        self.deadline_ms = 0
        self.events = 0
        self.next_calls = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, obj, hdrs=None):
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                for k, v in (hdrs or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(b)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_POST(self):
                self.body()
                if self.path.endswith("/extension/register"):
                    self.reply(200, {"functionName": "rlb", "functionVersion": "$LATEST",
                                     "handler": "x"}, {"Lambda-Extension-Identifier": "id-1"})
                else:
                    self.reply(202, {})

            def do_PUT(self):
                self.body()
                self.reply(202, {"errorType": "Telemetry.NotSupported"})

            def do_GET(self):
                if not self.path.endswith("/event/next"):
                    self.reply(404, {})
                    return
                api.next_calls += 1
                if api.next_calls == 1:
                    self.reply(200, {"eventType": "INVOKE", "requestId": "req-1",
                                     "deadlineMs": int(time.time() * 1000) + 60000,
                                     "invokedFunctionArn": "arn:x", "tracing": {}})
                    return
                # Blocks until shutdown() (bounded: the harness never waits more than 60 s).
                api.shutdown_ev.wait(60)
                self.reply(200, {"eventType": "SHUTDOWN", "shutdownReason": "spindown",
                                 "deadlineMs": api.deadline_ms})

        class Srv(socketserver.ThreadingTCPServer):
            def handle_error(self, request, client_address):
                pass  # stash gone mid-answer: nothing to report

        self.srv = Srv(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def shutdown(self, budget_ms=2000):
        self.deadline_ms = int(time.time() * 1000) + budget_ms
        self.shutdown_ev.set()

    def close(self):
        self.shutdown_ev.set()
        self.srv.shutdown()
        self.srv.server_close()


def waiting_requests(port, n, keys):
    """Starts n requests that will wait on a hung upstream; returns (threads, results)."""
    res = [None] * n

    def one(i):
        t0 = time.monotonic()
        s, _, b = request(port, "GET", "/v1/" + keys[i % len(keys)], timeout=20)
        res[i] = (s, jtype(b), time.monotonic() - t0)

    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    return ts, res


def wait_in_flight(fake, n, secs=5.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if fake.stats().get("in_flight", 0) >= n:
            return True
        time.sleep(0.05)
    return False


def section_signals(args, fake):
    keys = ["k%03d" % i for i in range(1, 13)]
    figs = {}
    # Agent mode: SIGTERM with 12 requests waiting on a hung upstream.
    fake.ctl("reset")
    fake.ctl("hang", op="GetSecretValue", count=100, ms=15000)
    proc, port = start_stash(args.stash, "sigterm-agent", fake.url,
                             {"PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "16"})
    ts, res = waiting_requests(port, 12, keys)
    wait_in_flight(fake, 12)
    t0 = time.monotonic()
    rc = proc.stop(wait=10)
    stop_s = time.monotonic() - t0
    for t in ts:
        t.join(timeout=20)
    answered = sum(1 for r in res if r and r[0] == 503)
    check("signals: agent SIGTERM exits 0 in %.2f s" % stop_s, rc == 0 and stop_s < 3,
          "exit %s" % rc)
    check("signals: agent SIGTERM answers every waiting request 503 (%d of 12; %s)"
          % (answered, [r and r[0] for r in res]), answered == 12)
    figs["agent_sigterm"] = {"waiting": 12, "answered_503": answered, "exit": rc,
                             "seconds": round(stop_s, 3)}
    fake.ctl("reset")

    # Lambda mode: SHUTDOWN and SIGTERM, each with 12 requests waiting.
    for how in ("SHUTDOWN", "SIGTERM"):
        rounds = 1 if args.quick else 3
        all_answered = 0
        exits = []
        for _ in range(rounds):
            api = ExtensionsApi()
            fake.ctl("reset")
            fake.ctl("hang", op="GetSecretValue", count=100, ms=15000)
            proc, port = start_stash(args.stash, "lambda-" + how.lower(), fake.url,
                                     {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.port,
                                      "AWS_LAMBDA_FUNCTION_NAME": "rlb",
                                      "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "16"})
            for _ in range(100):
                if api.next_calls >= 2:
                    break
                time.sleep(0.05)
            ts, res = waiting_requests(port, 12, keys)
            wait_in_flight(fake, 12)
            t0 = time.monotonic()
            if how == "SHUTDOWN":
                api.shutdown(2000)
                try:
                    rc = proc.p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    rc = proc.stop(signal.SIGKILL)
            else:
                rc = proc.stop(signal.SIGTERM, wait=10)
            stop_s = time.monotonic() - t0
            for t in ts:
                t.join(timeout=20)
            answered = sum(1 for r in res if r and r[0] == 503)
            all_answered += answered
            exits.append(rc)
            out = proc.text()
            check("signals: Lambda %s exits 0 within the 2 s budget (%.2f s, exit %s)"
                  % (how, stop_s, rc), rc == 0 and stop_s < 2.0, out[-1500:])
            check("signals: Lambda %s answers every waiting request 503 before closing (%d of 12;"
                  " %s)" % (how, answered, [r and r[0] for r in res]), answered == 12)
            check("signals: Lambda %s writes the EMF record" % how, '"_aws"' in out, out[-1500:])
            no_secret("signals: no secret in stash's output (%s)" % how, out)
            api.close()
        figs["lambda_" + how.lower()] = {"rounds": rounds, "waiting": 12 * rounds,
                                         "answered_503": all_answered, "exits": exits}
    fake.ctl("reset")
    FIG["signals"] = figs


# ---- agent-mode metrics --------------------------------------------------------------------


def emf_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def emf_sum(lines, metric):
    total = 0
    for d in lines:
        v = d.get(metric)
        if isinstance(v, (int, float)):
            total += v
        elif isinstance(v, list):
            total += sum(v)
    return total


def section_agent(args, fake):
    fake.ctl("reset")
    proc, port = start_stash(args.stash, "agent-emf", fake.url,
                             {"STASH_AGGREGATE_INTERVAL_SECONDS": "1"})
    for k in ("k001", "k002", "k001"):
        request(port, "GET", "/v1/" + k)
    time.sleep(1.5)
    request(port, "GET", "/v1/k003")
    rc = proc.stop()
    lines = emf_lines(open(proc.out, errors="replace").read())
    check("agent: agent mode writes EMF lines by default (%d)" % len(lines), len(lines) >= 1,
          proc.text()[-1500:])
    calls = fake.stats()["ops"]["GetSecretValue"]["calls"]
    check("agent: EMF UpstreamCalls equal fake-aws's calls (%s vs %s)"
          % (emf_sum(lines, "UpstreamCalls"), calls), emf_sum(lines, "UpstreamCalls") == calls)
    check("agent: exit 0", rc == 0)
    proc2, port2 = start_stash(args.stash, "agent-emf-off", fake.url, {"STASH_METRICS_MODE": "off"})
    request(port2, "GET", "/v1/k001")
    proc2.stop()
    check("agent: STASH_METRICS_MODE=off writes none",
          not emf_lines(open(proc2.out, errors="replace").read()))


# ---- soak ----------------------------------------------------------------------------------


def section_soak(args, fake):
    # The full run soaks the ASan build (--asan-build); QUICK soaks the build it tests, which is
    # the ASan one under `make asan`.
    binary = args.asan_stash or args.stash
    asan = bool(args.asan_stash)
    if not os.path.exists(binary):
        check("soak: %s exists" % binary, False)
        return
    secs = float(os.environ.get("SOAK_SECONDS", "10" if args.quick else "120"))
    fake.ctl("reset")
    fake.ctl("latency", ms=2, jitter=3)
    env = {"SECRETS_MANAGER_TTL": "2", "SSM_PARAMETER_STORE_TTL": "2",
           "STASH_AGGREGATE_INTERVAL_SECONDS": "5", "STASH_MAX_ATTEMPTS": "2",
           "SECRETS_MANAGER_TIMEOUT_MILLIS": "2000", "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL":
           "info"}
    # A small quarantine: ASan's default (256 MB of freed blocks held back) grows RSS for
    # minutes whatever stash does, which would hide a leak or pass for one.
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:exitcode=99:quarantine_size_mb=16")
    proc, port = start_stash(binary, "soak", fake.url, env)
    stop_ev = threading.Event()
    lock = threading.Lock()
    tally = {"sent": 0, "answered": 0, "statuses": {}}
    keys = ["hot"] + ["k%03d" % i for i in range(1, 13)]

    def worker(seed):
        rnd = random.Random(seed)
        while not stop_ev.is_set():
            r = rnd.random()
            if r < 0.6:
                target = "/v1/" + rnd.choice(keys[:4])
            elif r < 0.8:
                target = "/v1/%s?refreshNow=%s" % (rnd.choice(keys), rnd.choice(["true", "false"]))
            elif r < 0.9:
                target = "/systemsmanager/parameters/get?name=%s&withDecryption=true" % \
                    rnd.choice(["/rlb/hot", "/rlb/plain"])
            elif r < 0.95:
                target = "/v1/denied"
            else:
                target = "/v1/nosuch-%d" % rnd.randrange(50)
            s, _, _ = request(port, "GET", target, timeout=15)
            with lock:
                tally["sent"] += 1
                if s is not None:
                    tally["answered"] += 1
                tally["statuses"][str(s)] = tally["statuses"].get(str(s), 0) + 1

    def chaos():
        rnd = random.Random(99)
        while not stop_ev.wait(1.0):
            r = rnd.random()
            if r < 0.3:
                fake.ctl("fail", op="GetSecretValue", status=500, count=3)
            elif r < 0.5:
                fake.ctl("throttle", count=3)
            elif r < 0.6:
                fake.ctl("hang", count=2, ms=2500)

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(6)]
    ct = threading.Thread(target=chaos, daemon=True)
    for t in ts:
        t.start()
    ct.start()
    rss = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        time.sleep(min(1.0, secs / 30.0))
        kb = proc.rss_kb()
        if kb:
            rss.append((round(time.monotonic() - t0, 1), kb))
    stop_ev.set()
    for t in ts:
        t.join(timeout=30)
    ct.join(timeout=5)
    time.sleep(0.5)
    rc = proc.stop(wait=20)
    fake.ctl("latency", ms=0)
    out = proc.text()
    stats = fake.stats()
    calls = stats["ops"]["GetSecretValue"]["calls"] + stats["ops"]["GetParameter"]["calls"]
    lines = emf_lines(open(proc.out, errors="replace").read())
    emf_calls = emf_sum(lines, "UpstreamCalls")
    check("soak: every request answered (%d of %d; %s)" % (tally["answered"], tally["sent"],
                                                          tally["statuses"]),
          tally["sent"] > 0 and tally["answered"] == tally["sent"])
    check("soak: no sanitizer report", "ERROR: AddressSanitizer" not in out
          and "runtime error:" not in out and "LeakSanitizer" not in out, out[-3000:])
    check("soak: exit 0 (%s)" % rc, rc == 0, out[-1500:])
    # Plateau: the last third's peak within 15% of the middle third's peak.
    n = len(rss)
    plateau = None
    if n >= 6:
        mid = max(v for _, v in rss[n // 3:2 * n // 3])
        last = max(v for _, v in rss[2 * n // 3:])
        plateau = last <= mid * 1.15 + 1024
        check("soak: RSS plateaus (middle third peak %d KB, last third %d KB)" % (mid, last),
              plateau)
    else:
        check("soak: enough RSS samples (%d)" % n, False)
    check("soak: EMF UpstreamCalls equal fake-aws's calls (%s vs %s)" % (emf_calls, calls),
          emf_calls == calls)
    no_secret("soak: no secret in stash's output or EMF", out)
    FIG["soak"] = {"seconds": secs, "requests": tally["sent"], "answered": tally["answered"],
                   "statuses": tally["statuses"], "rss_kb": rss, "emf_upstream_calls": emf_calls,
                   "fake_aws_calls": calls, "asan": asan, "exit": rc}


# ---- main ----------------------------------------------------------------------------------

SECTIONS = [("hostile", section_hostile), ("limits", section_limits), ("flood", section_flood),
            ("upstream", section_upstream), ("signals", section_signals),
            ("agent", section_agent), ("soak", section_soak)]


def write_results(args, started):
    FIG["meta"] = {"quick": args.quick, "started_utc": started,
                   "seconds": round(time.time() - START, 1), "passed": PASSED, "failed": FAILED,
                   "nproc": os.cpu_count(), "loadavg": os.getloadavg()}
    with open(args.out_json, "w") as fh:
        json.dump(FIG, fh, indent=1, sort_keys=True)
        fh.write("\n")
    md = ["# stash reliability run (`make reliability`)", "",
          "Started %s UTC, %.0f s, %d checks passed, %d failed; %d cores, load %.1f at the end."
          % (started, FIG["meta"]["seconds"], PASSED, FAILED, os.cpu_count(), os.getloadavg()[0]),
          ""]
    h = FIG.get("hostile")
    if h:
        md += ["## Hostile requests", "",
               "%d inputs tried over raw sockets; %d answered with an HTTP status, the rest closed "
               "cleanly; stash served the right value after each." % (h["inputs_tried"],
                                                                      h["answered_with_status"]),
               ""]
    f = FIG.get("flood")
    if f:
        md += ["## Slow-loris and idle connections", "",
               "| | |", "|---|---|",
               "| slow-loris connections (a header byte per second each) | %d |" % f["slow_loris"],
               "| idle connections (nothing sent) | %d |" % f["idle"],
               "| connections held by the attacker (median / max) | %s / %s |"
               % (f["held_median"], f["held_max"]),
               "| connections closed by stash (head deadline, idle timeout) | %d |"
               % f["closed_by_server"],
               "| good client: requests, one new connection each | %d in %.0f s |"
               % (f["good_requests"], f["seconds"]),
               "| good client: 200s | %.2f %% (%s) |" % (100 * f["good_success_rate"],
                                                        f["good_statuses"]),
               "| good client: p50 / p99 | %.2f ms / %.2f ms |" % (f["good_p50_ms"],
                                                                  f["good_p99_ms"]),
               "| same client, no attack: p50 / p99 | %.2f ms / %.2f ms |"
               % (f["quiet_p50_ms"], f["quiet_p99_ms"]),
               "| /ping during the flood | %s |" % f["ping_statuses"],
               "| stash's RSS before / with the connections open | %s KB / %s KB |"
               % (f.get("rss_kb_before"), f.get("rss_kb_during")), ""]
    u = FIG.get("upstream")
    if u:
        md += ["## Upstream faults", "", "%d of %d survived (answered as the README says)."
               % (u["survived"], u["tried"]), "", "| fault | status | ok |", "|---|---|---|"]
        md += ["| %s | %s | %s |" % (r["fault"], r["status"], "yes" if r["ok"] else "NO")
               for r in u["faults"]]
        md.append("")
    s = FIG.get("signals")
    if s:
        md += ["## SIGTERM and SHUTDOWN with requests waiting on a hung upstream", "",
               "| case | waiting | answered 503 | exit |", "|---|---|---|---|"]
        a = s.get("agent_sigterm")
        if a:
            md.append("| agent mode, SIGTERM | %d | %d | %s |" % (a["waiting"], a["answered_503"],
                                                                a["exit"]))
        for k in ("lambda_shutdown", "lambda_sigterm"):
            if k in s:
                md.append("| Lambda mode, %s (%d rounds) | %d | %d | %s |"
                          % (k.split("_")[1].upper(), s[k]["rounds"], s[k]["waiting"],
                             s[k]["answered_503"], s[k]["exits"]))
        md.append("")
    k = FIG.get("soak")
    if k:
        rss = k["rss_kb"]
        pick = rss[:: max(1, len(rss) // 10)] + ([rss[-1]] if rss else [])
        md += ["## Soak (%s build)" % ("ASan" if k["asan"] else "release"), "",
               "%.0f s, %d requests, %d answered (%s); EMF UpstreamCalls %s, fake-aws calls %s."
               % (k["seconds"], k["requests"], k["answered"], k["statuses"],
                  k["emf_upstream_calls"], k["fake_aws_calls"]), "",
               "RSS (s: KB): " + ", ".join("%s: %d" % (t, v) for t, v in pick), ""]
    with open(args.out_md, "w") as fh:
        fh.write("\n".join(md))


START = time.time()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--asan-build", default="")
    ap.add_argument("--out-json", default=None)
    ap.add_argument("--out-md", default=None)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if os.environ.get("QUICK"):
        args.quick = True
    os.chdir(ROOT)
    args.build = os.path.abspath(args.build)
    args.stash = os.path.join(args.build, "extensions", "stash")
    args.asan_stash = (os.path.join(os.path.abspath(args.asan_build), "extensions", "stash")
                       if args.asan_build else "")
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    raise_nofile()
    only = [s for s in args.only.split(",") if s]
    fake = FakeAws(args.build)
    try:
        for name, fn in SECTIONS:
            if only and name not in only:
                continue
            note("---- %s ----" % name)
            t0 = time.monotonic()
            try:
                fn(args, fake)
            except Exception as e:  # a harness error is a failed check, not a crash
                check("%s: ran to its end" % name, False, repr(e))
            note("%s: %.1f s" % (name, time.monotonic() - t0))
        check_sanitizers()
    finally:
        stop_all()
        shutil.rmtree(TMP, ignore_errors=True)
    if args.out_json and not only:
        write_results(args, started)
    print("%d passed, %d failed" % (PASSED, FAILED), flush=True)
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
