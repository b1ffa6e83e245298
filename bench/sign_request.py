#!/usr/bin/env python3
"""bench/sign_request.py: one Secrets Manager GetSecretValue request to ENDPOINT, signed with
SigV4 by botocore (an implementation independent of stash's) with the AWS_* credentials in the
environment.  Writes the headers to sign (one "Name: value" a line, Host excluded: bench_hit sends
the same Host) and the body, so bench_hit can replay the exact request over one kept-alive
connection: the direct upstream call with no client-library cost, the baseline of the miss path.
A signature stays valid for minutes, longer than the replay lasts."""
import argparse
import json
import os

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--headers", required=True)
    ap.add_argument("--body", required=True)
    a = ap.parse_args()
    body = json.dumps({"SecretId": a.secret}).encode()
    req = AWSRequest(method="POST", url=a.endpoint.rstrip("/") + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "secretsmanager.GetSecretValue",
    })
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                        os.environ.get("AWS_SESSION_TOKEN"))
    SigV4Auth(creds, "secretsmanager", os.environ.get("AWS_REGION", "us-east-1")).add_auth(req)
    with open(a.headers, "w") as f:
        for k, v in req.headers.items():
            if k.lower() not in ("host", "content-length"):
                f.write(f"{k}: {v}\n")
    with open(a.body, "wb") as f:
        f.write(body)


if __name__ == "__main__":
    main()
