#!/usr/bin/env python3
"""bench/gen_data.py: a fake-aws data file (sim/fake_aws/data.h format) for the benchmarks, on
stdout: --secrets N secrets "bench/secret-<i>" of --bytes bytes each (deterministic printable
text, so runs compare), their parameters "/bench/param-<i>", and the names the sample functions
read by default (sim/functions/lib/handlers.mjs)."""
import argparse
import json
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=4096)
    a = ap.parse_args()
    rnd = random.Random(42)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

    def text(n):
        return "".join(rnd.choice(alphabet) for _ in range(n))

    secrets = [{"Name": f"bench/secret-{i}", "Versions": [{"SecretString": text(a.bytes)}]}
               for i in range(a.secrets)]
    params = [{"Name": f"/bench/param-{i}", "Type": "String", "Value": text(64)}
              for i in range(a.secrets)]
    for name in ("demo/db-password", "demo/api-key", "demo/signing-key"):
        secrets.append({"Name": name, "Versions": [{"SecretString": text(32)}]})
    params.append({"Name": "/demo/app/config", "Type": "String", "Value": '{"feature":"on"}'})
    json.dump({"Secrets": secrets, "Parameters": params}, __import__("sys").stdout)


if __name__ == "__main__":
    main()
