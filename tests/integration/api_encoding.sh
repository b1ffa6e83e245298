#!/usr/bin/env bash
# The local API's URL decoding, end to end against fake-aws: what a caller sends is what stash
# asks upstream for and keys its cache by.  An encoded NUL (%00) anywhere in the path or the query
# is refused (400, no upstream call): decoding it would cut "prod/db%00x" down to "prod/db" and
# serve that other secret, from that other secret's cache entry.  Also pinned: %2F and a
# double-encoded %252F, '+' as a space in the query (form encoding), repeated parameters (the
# first counts), and that a refused request leaves the kept-alive connection usable.
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash
FAKE=$BUILD/bin/fake-aws
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
if [ ! -x "$FAKE" ] || [ ! -x "$STASH" ] || [ ! -f "$DATA" ]; then
  echo "not ok - stash, fake-aws or the sample data is missing"
  echo "0 passed, 1 failed"
  exit 1
fi

AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
TOKEN=enc-token-$$

fport=$(free_port)
bg fake "$FAKE" --port "$fport" --data "$DATA" --region us-east-1 --access-key "$AKID" \
  --secret-key "$SECRET" --session-token "$TOKEN"
wait_port "$fport" || { cat "$T/fake.log"; finish; }
F=http://127.0.0.1:$fport

port=$(free_port)
bg stash env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID \
  AWS_SECRET_ACCESS_KEY="$SECRET" AWS_SESSION_TOKEN="$TOKEN" AWS_ENDPOINT_URL="$F" \
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug \
  "$STASH"
wait_port "$port" || { cat "$T/stash.log"; finish; }
U=http://127.0.0.1:$port
H="X-Aws-Parameters-Secrets-Token: $TOKEN"

get() {  # URL: body in $T/body, prints the status
  curl -s -o "$T/body" -w '%{http_code}' -H "$H" "$1"
}
j() {  # python expression over d = the last body
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/body" "$1"
}
calls() {  # GetSecretValue + GetParameter calls fake-aws has answered so far
  curl -s "$F/_fake/stats" | python3 -c '
import json, sys
ops = json.load(sys.stdin)["ops"]
print(ops["GetSecretValue"]["calls"] + ops["GetParameter"]["calls"])'
}

# Fill the cache with prod/db, so a truncated name would be a hit on it.
expect_eq "prod/db: 200" 200 "$(get "$U/secretsmanager/get?secretId=prod%2Fdb")"
c0=$(calls)

# ---- %00 is refused wherever it is ----
for q in "secretsmanager/get?secretId=prod%2Fdb%00x" \
  "secretsmanager/get?secretId=prod%2Fdb%00" \
  "secretsmanager/get?secretId=prod%2Fdb&versionStage=AWSCURRENT%00AWSPREVIOUS" \
  "secretsmanager/get?secretId=prod%2Fdb&x%00y=1" \
  "v1/prod%2Fdb%00x" \
  "systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fdb%2Fhost%00x"; do
  expect_eq "$q: 400" 400 "$(get "$U/$q")"
  expect_eq "$q: ValidationException" ValidationException "$(j 'd["__type"]')"
  check "$q: the message names the NUL byte" grep -q 'NUL byte' "$T/body"
  check "$q: no secret in the answer" bash -c "! grep -q 'Pa55word' '$T/body'"
done
expect_eq "no upstream call for any of them" "$c0" "$(calls)"
# The token is still checked first: no token, 401 (the NUL is not an oracle).
expect_eq "%00 without a token: 401" 401 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$U/secretsmanager/get?secretId=prod%2Fdb%00x")"
# A refused request does not poison the next one on the same connection.
# (status:new connections of each transfer; 0 for the second means it reused the first's)
expect_eq "keep-alive: 400 then 200 on one connection" "400:1 200:0" "$(curl -s -H "$H" \
  -w '%{http_code}:%{num_connects} ' -o /dev/null "$U/v1/prod%2Fdb%00x" -o /dev/null \
  "$U/v1/prod%2Fdb" | sed 's/ $//')"

# ---- what decoding does mean ----
expect_eq "%252F is a literal %2F in the name: upstream says not found" 400 \
  "$(get "$U/secretsmanager/get?secretId=prod%252Fdb")"
expect_eq "... ResourceNotFoundException" ResourceNotFoundException "$(j 'd["__type"]')"
expect_eq "'+' in the query is a space (form encoding): not found" ResourceNotFoundException \
  "$(get "$U/secretsmanager/get?secretId=prod+db" >/dev/null; j 'd["__type"]')"
expect_eq "repeated secretId: the first counts" "prod/api-key" \
  "$(get "$U/secretsmanager/get?secretId=prod%2Fapi-key&secretId=prod%2Fdb" >/dev/null
  j 'd["Name"]')"
expect_eq "/v1/ with an encoded slash" "prod/db" "$(get "$U/v1/prod%2Fdb" >/dev/null; j 'd["Name"]')"

check "no secret value in stash's debug log" \
  bash -c "! grep -a -e 'Pa55word' -e 'sk_live_' -e 's3cure' '$T/stash.log'"
finish
