#!/usr/bin/env python3
"""bench/smaps.py PID: the resident set of a process by what backs it, from /proc/PID/smaps, as a
JSON object of KiB: one entry per shared library (the larger ones), "binary", "heap", "stacks"
(thread stacks and [stack]), "anon_other" and "libs_other"."""
import json
import os
import sys


def main():
    pid = sys.argv[1]
    exe = os.path.realpath(f"/proc/{pid}/exe")
    rss = {}
    name = None
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if not parts:
            continue
        if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:  # a mapping header
            path = parts[5] if len(parts) > 5 else ""
            if path == exe or path.endswith(" (deleted)") and path.startswith(exe):
                name = "binary"
            elif path.startswith("/") and ".so" in path:
                name = os.path.basename(path)
            elif path == "[heap]":
                name = "heap"
            elif path == "[stack]":
                name = "stacks"
            elif path == "":
                name = "anon_other"  # thread stacks and malloc arenas are anonymous maps
            else:
                name = "other"
        elif parts[0] == "Rss:" and name:
            rss[name] = rss.get(name, 0) + int(parts[1])
    out = {}
    small = 0
    for k, v in sorted(rss.items(), key=lambda kv: -kv[1]):
        if k.startswith("lib") and (v < 300 or len(out) > 12):
            small += v
        else:
            out[k + "_kb"] = v
    out["libs_other_kb"] = small
    out["total_kb"] = sum(rss.values())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
