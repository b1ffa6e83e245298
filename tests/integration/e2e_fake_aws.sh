#!/usr/bin/env bash
# stash end to end against fake-aws (real wire, SigV4 checked), driven by curl and Node's fetch:
# hit and miss (upstream calls counted by fake-aws), TTL 0, version selectors, response shapes
# field by field, every error status (passed-through AWS errors, 429 + Retry-After, 504, 500),
# tokens, /ping, /v1/<id>, refreshNow after a rotation, serve-stale with upstream failing, and
# 32 concurrent cold requests for one key making exactly one upstream call.
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash
FAKE=$BUILD/bin/fake-aws
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
if [ ! -x "$FAKE" ] || [ ! -f "$DATA" ]; then
  echo "not ok - fake-aws or its sample data is missing ($FAKE, $DATA)"
  echo "0 passed, 1 failed"
  exit 1
fi

AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
TOKEN=e2e-session-token-$$

fport=$(free_port)
bg fake "$FAKE" --port "$fport" --data "$DATA" --region us-east-1 --access-key "$AKID" \
  --secret-key "$SECRET" --session-token "$TOKEN"
wait_port "$fport" || { cat "$T/fake.log"; finish; }
F=http://127.0.0.1:$fport

# Starts stash NAME with extra VAR=value settings; sets $U to its base URL.
start_stash() {
  local name=$1 port
  shift
  port=$(free_port)
  bg "$name" env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID \
    AWS_SECRET_ACCESS_KEY="$SECRET" AWS_SESSION_TOKEN="$TOKEN" AWS_ENDPOINT_URL="$F" \
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" STASH_MAX_ATTEMPTS=2 "$@" "$STASH"
  wait_port "$port" || cat "$T/$name.log"
  U=http://127.0.0.1:$port
}

H="X-Aws-Parameters-Secrets-Token: $TOKEN"
get() {  # URL [curl args]: body in $T/body, headers in $T/headers, prints the status
  local url=$1
  shift
  curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' -H "$H" "$@" "$url"
}
j() {  # python expression over d = the last body
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/body" "$1"
}
calls() {  # upstream calls of one operation so far
  curl -s "$F/_fake/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"][sys.argv[1]]["calls"])' "$1"
}
fake() { curl -s -o /dev/null -w '%{http_code}' -X POST "$F/_fake/$1"; }

start_stash main PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug SECRETS_MANAGER_TIMEOUT_MILLIS=800
MAIN=$U

# ---- Secrets Manager: miss, hit, shape ----
c0=$(calls GetSecretValue)
expect_eq "first GET prod/db: 200" 200 "$(get "$MAIN/secretsmanager/get?secretId=prod%2Fdb")"
expect_eq "a miss makes one upstream call" $((c0 + 1)) "$(calls GetSecretValue)"
check "Content-Type application/json" grep -qi '^content-type: application/json' "$T/headers"
expect_eq "exactly AWS's extension's fields, in its order" \
  "['ARN', 'CreatedDate', 'Name', 'SecretBinary', 'SecretString', 'VersionId', 'VersionStages', 'ResultMetadata']" \
  "$(j 'list(d.keys())')"
expect_eq "Name" "prod/db" "$(j 'd["Name"]')"
check "ARN is the secret's ARN" bash -c "[[ '$(j 'd["ARN"]')' == arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-?????? ]]"
expect_eq "VersionId is AWSCURRENT's" "a1b2c3d4-2222-4aaa-8bbb-000000000002" "$(j 'd["VersionId"]')"
expect_eq "VersionStages" "['AWSCURRENT']" "$(j 'd["VersionStages"]')"
expect_eq "SecretString is the current JSON" "n3w-Pa55word" "$(j 'json.loads(d["SecretString"])["password"]')"
expect_eq "SecretBinary is null" "None" "$(j 'd["SecretBinary"]')"
expect_eq "CreatedDate in ISO form" "2026-02-10T09:00:00.250Z" "$(j 'd["CreatedDate"]')"
expect_eq "ResultMetadata is {}" "{}" "$(j 'd["ResultMetadata"]')"
cp "$T/body" "$T/first"
expect_eq "second GET: 200" 200 "$(get "$MAIN/secretsmanager/get?secretId=prod%2Fdb")"
expect_eq "a hit makes no upstream call" $((c0 + 1)) "$(calls GetSecretValue)"
check "the hit's body is the miss's body" cmp "$T/first" "$T/body"
expect_eq "/v1/<id> reads the same entry: 200" 200 "$(get "$MAIN/v1/prod%2Fdb")"
check "/v1/ body is the same" cmp "$T/first" "$T/body"
expect_eq "/v1/ was a hit" $((c0 + 1)) "$(calls GetSecretValue)"
expect_eq "X-Vault-Token accepted" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $TOKEN" "$MAIN/v1/prod%2Fdb")"

# ---- version selectors ----
get "$MAIN/secretsmanager/get?secretId=prod/db&versionStage=AWSPREVIOUS" >/dev/null
expect_eq "versionStage=AWSPREVIOUS: the old password" "old-Pa55word" "$(j 'json.loads(d["SecretString"])["password"]')"
expect_eq "AWSPREVIOUS VersionStages" "['AWSPREVIOUS']" "$(j 'd["VersionStages"]')"
get "$MAIN/secretsmanager/get?secretId=prod/db&versionId=a1b2c3d4-1111-4aaa-8bbb-000000000001" >/dev/null
expect_eq "versionId selects that version" "a1b2c3d4-1111-4aaa-8bbb-000000000001" "$(j 'd["VersionId"]')"
expect_eq "binary secret: 200" 200 "$(get "$MAIN/secretsmanager/get?secretId=prod/tls-key")"
expect_eq "SecretBinary is base64" "AAECAwQFBgcICQoLDA0ODxAREhP/" "$(j 'd["SecretBinary"]')"
expect_eq "SecretString is null for a binary secret" "None" "$(j 'd["SecretString"]')"

# ---- SSM ----
c1=$(calls GetParameter)
expect_eq "parameter: 200" 200 "$(get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fdb%2Fhost")"
expect_eq "top level: Parameter, ResultMetadata" "['Parameter', 'ResultMetadata']" "$(j 'list(d.keys())')"
expect_eq "Parameter: exactly AWS's extension's fields, in its order" \
  "['ARN', 'DataType', 'LastModifiedDate', 'Name', 'Selector', 'SourceResult', 'Type', 'Value', 'Version']" \
  "$(j 'list(d["Parameter"].keys())')"
expect_eq "Selector and SourceResult are null" "None None" "$(j 'd["Parameter"]["Selector"], d["Parameter"]["SourceResult"]' | tr -d '(),')"
check "LastModifiedDate is ISO 8601 with milliseconds" bash -c \
  "[[ '$(j 'd["Parameter"]["LastModifiedDate"]')' =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ ]]"
expect_eq "Parameter.Value" "db.internal" "$(j 'd["Parameter"]["Value"]')"
expect_eq "Parameter.Name" "/app/prod/db/host" "$(j 'd["Parameter"]["Name"]')"
expect_eq "Parameter.Type" "String" "$(j 'd["Parameter"]["Type"]')"
expect_eq "Parameter.Version" "1" "$(j 'd["Parameter"]["Version"]')"
expect_eq "Parameter.DataType" "text" "$(j 'd["Parameter"]["DataType"]')"
check "Parameter.ARN" bash -c "[ '$(j 'd["Parameter"]["ARN"]')' = arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/db/host ]"
expect_eq "ResultMetadata is {}" "{}" "$(j 'd["ResultMetadata"]')"
expect_eq "trailing-slash path is a hit" 200 "$(get "$MAIN/systemsmanager/parameters/get/?name=%2Fapp%2Fprod%2Fdb%2Fhost")"
expect_eq "one GetParameter for the two" $((c1 + 1)) "$(calls GetParameter)"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fdb%2Fpassword" >/dev/null
check "SecureString without withDecryption is not the plaintext" bash -c "[ '$(j 'd["Parameter"]["Value"]')' != s3cure-Pa55 ]"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fdb%2Fpassword&withDecryption=true" >/dev/null
expect_eq "withDecryption=true: the plaintext" "s3cure-Pa55" "$(j 'd["Parameter"]["Value"]')"
expect_eq "SecureString Type" "SecureString" "$(j 'd["Parameter"]["Type"]')"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fallowed-origins" >/dev/null
expect_eq "StringList is comma-joined" "https://a.example,https://b.example,https://c.example" "$(j 'd["Parameter"]["Value"]')"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Ffeature-flags" >/dev/null
expect_eq "no selector: the latest version" "3" "$(j 'd["Parameter"]["Version"]')"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Ffeature-flags&version=1" >/dev/null
expect_eq "version=1" "{\"beta\":false}" "$(j 'd["Parameter"]["Value"]')"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Ffeature-flags&label=canary" >/dev/null
expect_eq "label=canary: version 2" "2" "$(j 'd["Parameter"]["Version"]')"
get "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Ffeature-flags&label=stable&version=3" >/dev/null
expect_eq "label then version: the label counts (first after ?)" "1" "$(j 'd["Parameter"]["Version"]')"
get "$MAIN/systemsmanager/parameters/get?version=3&name=%2Fapp%2Fprod%2Ffeature-flags&label=stable" >/dev/null
expect_eq "version then label: the version counts" "3" "$(j 'd["Parameter"]["Version"]')"
expect_eq "name without a leading slash" 200 "$(get "$MAIN/systemsmanager/parameters/get?name=plain-name")"
expect_eq "ARN as a name" 200 \
  "$(get "$MAIN/systemsmanager/parameters/get?name=arn%3Aaws%3Assm%3Aus-east-1%3A123456789012%3Aparameter%2Fapp%2Fprod%2Fdb%2Fhost")"
expect_eq "ARN name's value" "db.internal" "$(j 'd["Parameter"]["Value"]')"
expect_eq "/aws/reference/secretsmanager/: 200" 200 \
  "$(get "$MAIN/systemsmanager/parameters/get?name=%2Faws%2Freference%2Fsecretsmanager%2Fprod%2Fapi-key&withDecryption=true")"
expect_eq "reference Value is the secret" "sk_live_0123456789abcdef" "$(j 'd["Parameter"]["Value"]')"
check "reference SourceResult holds the secret's JSON" python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); s=json.loads(d["Parameter"]["SourceResult"])
assert s["name"] == "prod/api-key", s' "$T/body"

# ---- upstream errors passed through ----
expect_eq "missing secret: upstream's 400" 400 "$(get "$MAIN/secretsmanager/get?secretId=nope")"
expect_eq "ResourceNotFoundException" "ResourceNotFoundException" "$(j 'd["__type"]')"
check "the message is there" bash -c "[ -n '$(j 'd["message"]' | tr -d "'")' ]"
get "$MAIN/secretsmanager/get?secretId=prod/denied" >/dev/null
expect_eq "AccessDeniedException passed through" "AccessDeniedException" "$(j 'd["__type"]')"
get "$MAIN/secretsmanager/get?secretId=prod/kms-broken" >/dev/null
expect_eq "DecryptionFailure passed through" "DecryptionFailure" "$(j 'd["__type"]')"
get "$MAIN/secretsmanager/get?secretId=prod/deleted" >/dev/null
expect_eq "deleted secret: InvalidRequestException" "InvalidRequestException" "$(j 'd["__type"]')"
expect_eq "missing parameter: 400" 400 "$(get "$MAIN/systemsmanager/parameters/get?name=%2Fnope")"
expect_eq "ParameterNotFound" "ParameterNotFound" "$(j 'd["__type"]')"
c2=$(calls GetSecretValue)
get "$MAIN/secretsmanager/get?secretId=nope" >/dev/null
expect_eq "errors are not cached" $((c2 + 1)) "$(calls GetSecretValue)"

# ---- throttling, 5xx, timeout (keys not cached yet) ----
fake "throttle?op=GetSecretValue&count=2" >/dev/null
c3=$(calls GetSecretValue)
expect_eq "throttled after every attempt: 429" 429 "$(get "$MAIN/secretsmanager/get?secretId=prod/api-key")"
check "429 carries Retry-After" grep -qi '^retry-after: [0-9]' "$T/headers"
expect_eq "429 type" "ThrottlingException" "$(j 'd["__type"]')"
expect_eq "STASH_MAX_ATTEMPTS=2: two upstream attempts" $((c3 + 2)) "$(calls GetSecretValue)"
fake "fail?op=GetSecretValue&status=500&count=2" >/dev/null
expect_eq "upstream 500 after retries: passed through" 500 "$(get "$MAIN/secretsmanager/get?secretId=prod/api-key")"
check "500 body has a __type" bash -c "[ -n '$(j 'd["__type"]')' ]"
fake "fail?op=GetSecretValue&status=503&type=ServiceUnavailable&count=2" >/dev/null
expect_eq "upstream 503: passed through" 503 "$(get "$MAIN/secretsmanager/get?secretId=prod/api-key")"
fake "hang?op=GetSecretValue&ms=1500&count=2" >/dev/null
expect_eq "upstream hangs past SECRETS_MANAGER_TIMEOUT_MILLIS: 504" 504 \
  "$(get "$MAIN/secretsmanager/get?secretId=prod/api-key")"
expect_eq "504 type" "TimeoutError" "$(j 'd["__type"]')"
sleep 1 # fake-aws counts the abandoned call when its hang ends; let it, before counting again
fake reset >/dev/null
expect_eq "after the faults: 200" 200 "$(get "$MAIN/secretsmanager/get?secretId=prod/api-key")"

# ---- refreshNow after a rotation ----
expect_eq "cached value before rotation" "sk_live_0123456789abcdef" "$(j 'd["SecretString"]')"
expect_eq "rotate" 200 "$(fake "rotate?secretId=prod/api-key&value=sk_live_rotated")"
get "$MAIN/secretsmanager/get?secretId=prod/api-key" >/dev/null
expect_eq "within the TTL the cached value is served" "sk_live_0123456789abcdef" "$(j 'd["SecretString"]')"
get "$MAIN/secretsmanager/get?secretId=prod/api-key&refreshNow=true" >/dev/null
expect_eq "refreshNow=true fetches the rotated value" "sk_live_rotated" "$(j 'd["SecretString"]')"
c4=$(calls GetSecretValue)
get "$MAIN/secretsmanager/get?secretId=prod/api-key" >/dev/null
expect_eq "and replaced the cached entry" "sk_live_rotated" "$(j 'd["SecretString"]')"
expect_eq "which is a hit" "$c4" "$(calls GetSecretValue)"

# ---- 32 concurrent cold requests for one key: one upstream call ----
fake "latency?ms=1000" >/dev/null # every request arrives while the first is in flight
c5=$(calls GetParameter)
urls=()
for i in $(seq 32); do urls+=(-o "$T/par.$i" "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fallowed-origins&withDecryption=true&n=$i"); done
curl -s --parallel --parallel-immediate --parallel-max 32 -H "$H" "${urls[@]}" 2>/dev/null
fake "latency?ms=0" >/dev/null
expect_eq "32 concurrent cold requests: exactly 1 upstream call" $((c5 + 1)) "$(calls GetParameter)"
ok=0
for i in $(seq 32); do
  grep -q '"Value":"https://a.example,https://b.example,https://c.example"' "$T/par.$i" &&
    ok=$((ok + 1))
done
expect_eq "all 32 got the value" 32 "$ok"

# ---- a miss waiting upstream does not hold up hits on other connections ----
get "$MAIN/secretsmanager/get?secretId=prod/db" >/dev/null # cached above; make sure
fake "latency?ms=2000" >/dev/null
curl -s -o "$T/slow" -H "$H" "$MAIN/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Ffeature-flags&label=stable&withDecryption=true" &
slow=$!
sleep 0.2 # the miss is upstream now
hits=0
for i in 1 2 3 4 5; do
  [ "$(get "$MAIN/secretsmanager/get?secretId=prod/db")" = 200 ] && hits=$((hits + 1))
done
kill -0 "$slow" 2>/dev/null
expect_eq "5 hits answered while the miss is still waiting upstream" "5 0" "$hits $?"
wait "$slow"
fake "latency?ms=0" >/dev/null
check "and the miss completes" grep -q '"Version":1' "$T/slow"

# ---- tokens and /ping on the live server ----
expect_eq "no token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$MAIN/secretsmanager/get?secretId=prod/db")"
expect_eq "wrong token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Aws-Parameters-Secrets-Token: x' "$MAIN/secretsmanager/get?secretId=prod/db")"
expect_eq "/ping" "healthy" "$(curl -s "$MAIN/ping")"

# ---- Node's fetch, as the AWS blog posts do ----
check "Node 20 fetch with the header (localhost, JSON.parse of SecretString)" \
  env STASH_PORT="${MAIN##*:}" AWS_SESSION_TOKEN="$TOKEN" SECRET_ID=prod/db \
  EXPECT_JSON_KEY=password EXPECT_JSON_VALUE=n3w-Pa55word PARAM_NAME=/app/prod/db/host \
  EXPECT_PARAM_VALUE=db.internal node "$STASH_ROOT/tests/node/stash_fetch.mjs"

check "no secret value or token in stash's log" \
  bash -c "! grep -q 'n3w-Pa55word\|s3cure-Pa55\|sk_live\|$TOKEN\|EXAMPLEKEY' '$T/main.log'"

# ---- TTL 0: every request upstream ----
start_stash ttl0 SECRETS_MANAGER_TTL=0
c6=$(calls GetSecretValue)
for i in 1 2 3; do get "$U/secretsmanager/get?secretId=prod/db" >/dev/null; done
expect_eq "SECRETS_MANAGER_TTL=0: 3 requests, 3 upstream calls" $((c6 + 3)) "$(calls GetSecretValue)"
c7=$(calls GetParameter)
for i in 1 2; do get "$U/systemsmanager/parameters/get?name=plain-name" >/dev/null; done
expect_eq "SSM TTL still 300 there: 1 call" $((c7 + 1)) "$(calls GetParameter)"

# ---- serve-stale: expired entry, upstream failing ----
start_stash stale SECRETS_MANAGER_TTL=1 STASH_STALE_MAX_SECONDS=600
expect_eq "stale: first fetch" 200 "$(get "$U/secretsmanager/get?secretId=prod/db")"
cp "$T/body" "$T/stale-first"
sleep 1.3
fake "fail?op=GetSecretValue&status=500&count=4" >/dev/null
c8=$(calls GetSecretValue)
expect_eq "expired, upstream 500: the old value is served" 200 "$(get "$U/secretsmanager/get?secretId=prod/db")"
check "same body as before" cmp "$T/stale-first" "$T/body"
check "a refresh was attempted" bash -c "[ $(calls GetSecretValue) -gt $c8 ]"
fake reset >/dev/null
fake "throttle?op=GetSecretValue&count=4" >/dev/null
expect_eq "expired, upstream throttling: the old value is served" 200 "$(get "$U/secretsmanager/get?secretId=prod/db")"
fake reset >/dev/null
fake "fail?op=GetSecretValue&status=400&type=ResourceNotFoundException&count=1" >/dev/null
expect_eq "a non-transient error is not masked by the stale copy" 400 "$(get "$U/secretsmanager/get?secretId=prod/db")"
fake reset >/dev/null

# ---- prefetch: the first request is a hit ----
total() {
  echo $(($(calls GetSecretValue) + $(calls GetParameter) + $(calls BatchGetSecretValue) +
    $(calls GetParameters)))
}
before=$(total)
start_stash pre STASH_PREFETCH_SECRETS="prod/tls-key, prod/db" STASH_PREFETCH_PARAMETERS=/app/prod/db/password
for i in $(seq 50); do
  [ "$(total)" -ge $((before + 2)) ] && break
  sleep 0.1
done
expect_eq "prefetch made 2 upstream calls (one batch per service)" $((before + 2)) "$(total)"
c9=$(calls GetSecretValue)
get "$U/secretsmanager/get?secretId=prod/tls-key" >/dev/null
get "$U/systemsmanager/parameters/get?name=%2Fapp%2Fprod%2Fdb%2Fpassword&withDecryption=true" >/dev/null
expect_eq "prefetched secret: the first request is a hit" "$c9" "$(calls GetSecretValue)"
expect_eq "prefetched parameter value" "s3cure-Pa55" "$(j 'd["Parameter"]["Value"]')"

# SIGTERM while the prefetch is still waiting upstream: the server stops, the prefetch ends,
# then the cache is wiped; exit 0 (under ASan a use after free would show here).
fake "latency?ms=800" >/dev/null
c10=$(calls BatchGetSecretValue)
start_stash pre2 STASH_PREFETCH_SECRETS="prod/db,prod/api-key,prod/tls-key,prod/db,prod/api-key"
sleep 0.3
pre2_pid=${_pids[-1]}
kill -TERM "$pre2_pid"
wait "$pre2_pid"
expect_eq "SIGTERM during prefetch: exit 0" 0 $?
fake "latency?ms=0" >/dev/null
sleep 0.2
check "the prefetch stopped after the call in flight (at most 1 made)" \
  bash -c "[ $(calls BatchGetSecretValue) -le $((c10 + 1)) ]"

main_pid=${_pids[1]}
kill -TERM "$main_pid"
wait "$main_pid"
expect_eq "SIGTERM: stash exits 0" 0 $?
finish
