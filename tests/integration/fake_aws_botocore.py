"""fake-aws checked by a second, independent client: Debian's botocore (run with /usr/bin/python3).

    /usr/bin/python3 fake_aws_botocore.py PORT

Covers what the JavaScript SDK cannot send: malformed bodies, unknown targets, stale or tampered
signatures, missing or garbled Authorization headers, oversized bodies.  Prints one "ok - ..." or
"not ok - ..." line per check; exits non-zero if any failed.
"""
import datetime
import json
import sys
import urllib.error
import urllib.request

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

PORT = sys.argv[1]
URL = "http://127.0.0.1:%s/" % PORT
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
failed = 0


def check(desc, fn):
    global failed
    try:
        fn()
        print("ok - " + desc)
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        failed += 1
        print("not ok - " + desc)
        print("#   %r" % (e,))


def post(body, target, service="secretsmanager", sign=True, when=None, creds=CREDS,
         after_sign=None, headers=None):
    """Sends one request signed by botocore's SigV4Auth; returns (status, headers, json)."""
    req = AWSRequest(method="POST", url=URL, data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, **(headers or {})})
    if sign:
        auth = botocore.auth.SigV4Auth(creds, service, "us-east-1")
        if when is not None:
            # SigV4Auth stamps the current time; sign as of another time instead.
            real = botocore.auth.datetime.datetime

            class Frozen(real):
                @classmethod
                def utcnow(cls):
                    return when

                @classmethod
                def now(cls, tz=None):
                    return when.replace(tzinfo=tz) if tz else when

            botocore.auth.datetime.datetime = Frozen
            try:
                auth.add_auth(req)
            finally:
                botocore.auth.datetime.datetime = real
        else:
            auth.add_auth(req)
    if after_sign:
        after_sign(req)
    prepared = req.prepare()
    raw = urllib.request.Request(URL, data=prepared.body, method="POST",
                                 headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def expect_error(status, code, message_part=None, **kw):
    def run():
        st, hdrs, body = post(**kw)
        assert st == status, (st, body)
        assert body["__type"] == code, body
        assert hdrs["x-amzn-ErrorType"] == code, dict(hdrs)
        assert hdrs["x-amzn-RequestId"], dict(hdrs)
        assert hdrs["Content-Type"] == "application/x-amz-json-1.1", dict(hdrs)
        if message_part:
            assert message_part in body.get("message", ""), body
    return run


def client_calls():
    s = botocore.session.get_session()
    kw = dict(region_name="us-east-1", aws_access_key_id=CREDS.access_key,
              aws_secret_access_key=CREDS.secret_key, endpoint_url=URL.rstrip("/"),
              config=Config(retries={"max_attempts": 1}))
    sm = s.create_client("secretsmanager", **kw)
    ssm = s.create_client("ssm", **kw)
    r = sm.get_secret_value(SecretId="prod/db", VersionStage="AWSPREVIOUS")
    assert json.loads(r["SecretString"])["password"] == "old-Pa55word", r
    assert r["CreatedDate"].year == 2026, r
    r = ssm.get_parameter(Name="/app/prod/feature-flags:stable")
    assert r["Parameter"]["Version"] == 1, r
    try:
        ssm.get_parameter(Name="/app/prod/nope")
        raise AssertionError("no error")
    except ssm.exceptions.ParameterNotFound:
        pass
    try:
        sm.get_secret_value(SecretId="prod/nope")
        raise AssertionError("no error")
    except sm.exceptions.ResourceNotFoundException:
        pass


def good_raw():
    st, hdrs, body = post(b'{"SecretId":"prod/db"}', "secretsmanager.GetSecretValue")
    assert st == 200, (st, body)
    assert body["Name"] == "prod/db", body
    assert isinstance(body["CreatedDate"], (int, float)), body


now = datetime.datetime.utcnow()
GSV = "secretsmanager.GetSecretValue"

check("botocore clients: GetSecretValue by stage, GetParameter by label, modelled exceptions",
      client_calls)
check("a request signed by botocore's SigV4Auth is accepted; CreatedDate is epoch seconds",
      good_raw)
check("no Authorization header -> 400 MissingAuthenticationTokenException",
      expect_error(400, "MissingAuthenticationTokenException", body=b"{}", target=GSV,
                   sign=False))
check("a garbled Authorization header -> 400 IncompleteSignatureException",
      expect_error(400, "IncompleteSignatureException", body=b"{}", target=GSV, sign=False,
                   headers={"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x",
                            "X-Amz-Date": now.strftime("%Y%m%dT%H%M%SZ")}))
check("signed 20 minutes ago -> 403 InvalidSignatureException 'Signature expired'",
      expect_error(403, "InvalidSignatureException", "Signature expired",
                   body=b'{"SecretId":"prod/db"}', target=GSV,
                   when=now - datetime.timedelta(minutes=20)))
check("signed 20 minutes ahead -> 403 InvalidSignatureException 'not yet current'",
      expect_error(403, "InvalidSignatureException", "not yet current",
                   body=b'{"SecretId":"prod/db"}', target=GSV,
                   when=now + datetime.timedelta(minutes=20)))


def inside_window():
    st, _, body = post(b'{"SecretId":"prod/db"}', GSV, when=now - datetime.timedelta(minutes=10))
    assert st == 200, (st, body)


check("signed 10 minutes ago (inside the 15-minute window) is accepted", inside_window)


def tamper(req):
    req.data = b'{"SecretId":"prod/tls-key"}'


check("a body changed after signing -> 403 InvalidSignatureException",
      expect_error(403, "InvalidSignatureException", "does not match",
                   body=b'{"SecretId":"prod/db"}', target=GSV, after_sign=tamper))
check("an SSM target signed for secretsmanager -> 403 'scoped to correct service'",
      expect_error(403, "InvalidSignatureException", "correct service: 'ssm'",
                   body=b'{"Name":"/app/prod/db/host"}', target="AmazonSSM.GetParameter",
                   service="secretsmanager"))


def add_unsigned_token(req):
    req.headers["X-Amz-Security-Token"] = "added-after-signing"


check("a session token sent but not signed -> 403",
      expect_error(403, "InvalidSignatureException", "must be signed",
                   body=b'{"SecretId":"prod/db"}', target=GSV, after_sign=add_unsigned_token))
check("a body that is not JSON -> 400 SerializationException",
      expect_error(400, "SerializationException", body=b'{"SecretId":', target=GSV))
check("a JSON body that is not an object -> 400 SerializationException",
      expect_error(400, "SerializationException", body=b'["prod/db"]', target=GSV))
check("SecretId of the wrong type -> 400 SerializationException",
      expect_error(400, "SerializationException", body=b'{"SecretId":42}', target=GSV))
check("no SecretId -> 400 ValidationException",
      expect_error(400, "ValidationException", "secretId", body=b"{}", target=GSV))
check("WithDecryption of the wrong type -> 400 SerializationException",
      expect_error(400, "SerializationException", body=b'{"Name":"x","WithDecryption":"yes"}',
                   target="AmazonSSM.GetParameter", service="ssm"))
check("an operation fake-aws does not serve -> 400 UnknownOperationException",
      expect_error(400, "UnknownOperationException", body=b'{"SecretId":"prod/db"}',
                   target="secretsmanager.DeleteSecret"))
check("a body over 256 KiB -> 413",
      expect_error(413, "RequestEntityTooLarge",
                   body=b'{"SecretId":"' + b"x" * (300 * 1024) + b'"}', target=GSV))

print("# %d checks failed" % failed if failed else "# all checks passed")
sys.exit(1 if failed else 0)
