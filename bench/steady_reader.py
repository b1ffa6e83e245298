#!/usr/bin/env python3
"""bench/steady_reader.py: a key read steadily, as a function reads its secret on every request.

  steady_reader.py --port P --path PATH --token T --readers N --period-ms MS --seconds S
                   [--slow-ms X]

N callers (threads, one kept-alive connection each, their starts spread over one period) each
send one GET every MS milliseconds for S seconds.  Every read starts on its own slot of that
schedule, so a slow answer does not move the later ones (a slot already past is sent at once).
Prints one JSON object: answer times in microseconds (p50, p99, p999, max), reads, reads that
were not 200, and `slow`: reads that took X ms or more (given as half the latency upstream has,
so a read that waited for upstream counts and a hit slowed by a busy machine does not).
"""
import argparse
import http.client
import json
import threading
import time


def percentile(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, -(-len(xs) * p // 100) - 1))
    return xs[int(k)]


def reader(a, offset, out, bad):
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    hdr = {"X-Aws-Parameters-Secrets-Token": a.token}
    n = int(a.seconds * 1000 // a.period_ms)
    start = a.start + offset
    for i in range(n):
        delay = start + i * a.period_ms / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        conn.request("GET", a.path, headers=hdr)
        r = conn.getresponse()
        r.read()
        out.append((time.monotonic() - t0) * 1e6)
        if r.status != 200:
            bad.append(r.status)
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--period-ms", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--slow-ms", type=float, default=5)
    a = ap.parse_args()
    a.start = time.monotonic() + 0.05
    outs = [[] for _ in range(a.readers)]
    bad = []
    spread = a.period_ms / 1000 / a.readers
    ts = [threading.Thread(target=reader, args=(a, i * spread, outs[i], bad))
          for i in range(a.readers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    xs = sorted(x for o in outs for x in o)
    print(json.dumps({
        "p50_us": round(percentile(xs, 50), 1), "p99_us": round(percentile(xs, 99), 1),
        "p999_us": round(percentile(xs, 99.9), 1), "max_us": round(xs[-1], 1),
        "requests": len(xs), "errors": len(bad),
        "slow": sum(1 for x in xs if x >= a.slow_ms * 1000),
    }))


if __name__ == "__main__":
    main()
