#!/usr/bin/python3
"""Signs requests with botocore's SigV4Auth, for tests/unit/test_sigv4.c (an independent check).

Run with Debian's /usr/bin/python3 (python3-botocore), not a pyenv python.
    sigv4_botocore.py CASES.jsonl
Each input line is one request:
    {"method", "host", "path" (raw, as in the URL), "params": [[name, value], ...] (decoded;
     botocore encodes them), "headers": [[name, value], ...] (signed, repeats kept),
     "body" (hex), "region", "service", "amz_date", "akid", "secret"}
Each output line is {"creq", "sts", "sig"} for the input line of the same number.
The X-Amz-Date and X-Amz-Security-Token headers are in "headers" already, so the request is
signed as given rather than through add_auth (which would read the clock).
"""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(case):
    creds = Credentials(case["akid"], case["secret"])
    auth = SigV4Auth(creds, case["service"], case["region"])
    req = AWSRequest(
        method=case["method"],
        url="https://" + case["host"] + case["path"],
        data=bytes.fromhex(case["body"]),
        params=[(k, v) for k, v in case["params"]],
    )
    for name, value in case["headers"]:
        # HTTPHeaders (an email.message.Message) appends on assignment: repeats are kept.
        req.headers[name] = value
    req.context["timestamp"] = case["amz_date"]
    creq = auth.canonical_request(req)
    sts = auth.string_to_sign(req, creq)
    return {"creq": creq, "sts": sts, "sig": auth.signature(sts, req)}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            print(json.dumps(sign(json.loads(line))))


if __name__ == "__main__":
    main()
