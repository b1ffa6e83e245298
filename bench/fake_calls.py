#!/usr/bin/env python3
"""bench/fake_calls.py: reads fake-aws's GET /_fake/stats answer on stdin and prints the upstream
calls it counted as {"GetSecretValue": n, "GetParameter": m} (ops.<name>.calls: every request
naming the operation, answered or refused)."""
import json
import sys

OPS = ("GetSecretValue", "GetParameter")


def main():
    ops = json.load(sys.stdin).get("ops", {})
    print(json.dumps({op: int(ops.get(op, {}).get("calls", 0)) for op in OPS}))


if __name__ == "__main__":
    main()
