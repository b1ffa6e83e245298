#!/usr/bin/env bash
# fake-aws end to end: its command line, its control endpoints, and two real AWS clients against
# it (the AWS SDK for JavaScript v3 in tests/node/fake_aws_sdk.mjs, Debian's botocore in
# fake_aws_botocore.py), each printing ok/not ok lines that are counted here.
source "$(dirname "$0")/lib.bash"

FA=$BUILD/bin/fake-aws
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

# Counts the ok/not ok lines of a client script as checks of this script.
count_lines() {
  local prefix=$1 line
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) expect_eq "$prefix: ${line#ok - }" ok ok ;;
      "not ok - "*) expect_eq "$prefix: ${line#not ok - }" ok failed ;;
      "#"*) echo "$line" ;;
    esac
  done
}

# ---- command line ---------------------------------------------------------------------------
check "--help prints usage and exits 0" bash -c "'$FA' --help | grep -q -- '--latency-ms'"
"$FA" >/dev/null 2>"$T/nodata.err"
expect_eq "no --data: exit status 2" 2 "$?"
printf '{"Secrets":[{"Name":"x","Versions":[{"SecretString":"a","SecretBinary":"YQ=="}]}]}' \
  >"$T/bad.json"
"$FA" --data "$T/bad.json" >/dev/null 2>"$T/bad.err"
expect_eq "a malformed data file: exit status 1" 1 "$?"
check "a malformed data file: the error names the secret and the problem" \
  grep -q 'secret x: version .* needs exactly one of SecretString and SecretBinary' "$T/bad.err"
check "a malformed data file: no secret value in the error" bash -c "! grep -q 'YQ==' '$T/bad.err'"

# ---- a fixed free port with --ready-file ----------------------------------------------------
port=$(free_port)
bg fixed "$FA" --port "$port" --data "$DATA" --ready-file "$T/ready"
check "--port P: listening on that port" wait_port "$port"
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.05; done
expect_eq "--ready-file holds the port" "$port" "$(cat "$T/ready" 2>/dev/null)"
# /proc/net/tcp{,6}: every listening socket (state 0A) on the port is 127.0.0.1 (0100007F).
listeners=$(python3 - "$port" <<'PY'
import sys
port = int(sys.argv[1])
for path in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(path).read().splitlines()[1:]:
        f = line.split()
        addr, p = f[1].split(":")
        if int(p, 16) == port and f[3] == "0A":
            print(addr)
PY
)
expect_eq "binds 127.0.0.1 only" 0100007F "$listeners"

# ---- port 0, both credentials (one with a session token) ------------------------------------
bg fa "$FA" --port 0 --data "$DATA" --access-key "$AKID" --secret-key "$SECRET" \
  --access-key ASIATOKENKEY --secret-key token-secret --session-token tok-123
fa_pid=$!
for _ in $(seq 200); do grep -q 'listening on' "$T/fa.log" && break; sleep 0.05; done
P=$(sed -n 's/^fake-aws listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/fa.log")
check "--port 0: prints 'fake-aws listening on 127.0.0.1:PORT'" test -n "$P"
BASE=http://127.0.0.1:$P

stats_field() {  # python expression over the stats JSON `s`
  curl -s "$BASE/_fake/stats" | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

check "GET /_fake/stats is JSON with counters per operation" \
  test "$(stats_field "s['ops']['GetSecretValue']['calls']")" = 0
expect_eq "an unknown control path is 404" 404 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/_fake/nope")"
expect_eq "GET on a POST control endpoint is 405" 405 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/_fake/reset")"
expect_eq "fail with an unknown op is 400" 400 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/_fake/fail?op=DeleteSecret")"
expect_eq "latency over the ceiling is 400" 400 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/_fake/latency?ms=999999999")"
expect_eq "rotate of an unknown secret is 404" 404 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/_fake/rotate?secretId=no&value=v")"
body=$(curl -s -D "$T/h" -X POST -H 'X-Amz-Target: secretsmanager.GetSecretValue' \
  -H 'Content-Type: application/x-amz-json-1.1' -d '{"SecretId":"prod/db"}' "$BASE/")
expect_eq "an unsigned API call: MissingAuthenticationTokenException body" \
  '{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}' \
  "$body"
check "an unsigned API call: 400 with x-amzn-ErrorType and x-amzn-RequestId" \
  bash -c "grep -q '^HTTP/1.1 400' '$T/h' && grep -qi '^x-amzn-ErrorType: MissingAuthenticationTokenException' '$T/h' && grep -qiE '^x-amzn-RequestId: [0-9a-f-]{36}' '$T/h'"
expect_eq "the refused call is counted as an auth failure" 1 "$(stats_field "s['auth_failures']")"

# ---- real clients ---------------------------------------------------------------------------
if [ -d "$STASH_ROOT/tests/node/node_modules/@aws-sdk/client-ssm" ]; then
  (cd "$STASH_ROOT/tests/node" && node fake_aws_sdk.mjs "$P" 2>"$T/node.err") >"$T/node.out"
  rc=$?
  count_lines "sdk-js" <"$T/node.out"
  expect_eq "sdk-js: the script ran to its end" 1 "$(grep -c '^# all checks passed\|^# [0-9]* checks failed' "$T/node.out")"
  [ "$rc" = 0 ] || sed 's/^/#   /' "$T/node.err" | grep -v NodeVersionSupport | head -20
else
  expect_eq "AWS SDK for JavaScript installed in tests/node (scripts/deps.sh)" yes no
fi
/usr/bin/python3 "$STASH_ROOT/tests/integration/fake_aws_botocore.py" "$P" >"$T/py.out" 2>&1
count_lines "botocore" <"$T/py.out"
expect_eq "botocore: the script ran to its end" 1 "$(grep -c '^# all checks passed\|^# [0-9]* checks failed' "$T/py.out")"

# ---- a body over the ceiling without Content-Length (chunked) is read, dropped and refused ------
head -c 300000 /dev/zero | tr '\0' a >"$T/big"
expect_eq "a chunked body over 256 KiB: 413" 413 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
     -H 'X-Amz-Target: secretsmanager.GetSecretValue' --data-binary @"$T/big" "$BASE/")"

# ---- a hung request is counted when it arrives; SIGTERM ends the hang at once ---------------------
curl -s -X POST "$BASE/_fake/reset" >/dev/null
curl -s -X POST "$BASE/_fake/hang?count=1&ms=60000" >/dev/null
/usr/bin/python3 - "$P" >/dev/null 2>&1 <<'EOF' &
import sys, botocore.session
from botocore.config import Config
c = botocore.session.get_session().create_client(
    'ssm', region_name='us-east-1', endpoint_url='http://127.0.0.1:%s' % sys.argv[1],
    aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    config=Config(retries={'max_attempts': 1}, read_timeout=120))
c.get_parameter(Name='/app/prod/db/host')
EOF
hung=$!
for _ in $(seq 100); do
  [ "$(stats_field "s['ops']['GetParameter']['calls']")" = 1 ] && break
  sleep 0.05
done
expect_eq "a hung request: counted as a call on arrival, in flight, its hang taken" "1 True 0" \
  "$(stats_field "s['ops']['GetParameter']['calls'], s['in_flight'] >= 1, s['pending_faults']")"
start=$(date +%s%N)
kill -TERM "$fa_pid"
for _ in $(seq 100); do kill -0 "$fa_pid" 2>/dev/null || break; sleep 0.05; done
took=$(( ($(date +%s%N) - start) / 1000000 ))
check "SIGTERM stops fake-aws within 3 s while a request hangs (took ${took} ms)" \
  bash -c "! kill -0 $fa_pid 2>/dev/null && [ $took -lt 3000 ]"
kill "$hung" 2>/dev/null
wait "$hung" 2>/dev/null

finish
