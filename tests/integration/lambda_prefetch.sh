#!/usr/bin/env bash
# Prefetch work is counted, in the init record (issue 4: "requests during init (and prefetch
# work) form an init record").  lambda-sim runs stash with STASH_PREFETCH_SECRETS and
# STASH_PREFETCH_PARAMETERS against fake-aws; the function's init code reads the last prefetched
# parameter (so the prefetch is done before the first INVOKE), then one invoke reads the
# prefetched secret.  The EMF lines must account for every upstream call fake-aws answered: the
# two prefetch misses in the init record, and a hit with no upstream call in the invocation.
source "$(dirname "$0")/lib.bash"

SIM=$BUILD/bin/lambda-sim
FA=$BUILD/bin/fake-aws
STASH=$BUILD/extensions/stash
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
VALIDATE=$STASH_ROOT/tests/tools/emf_validate.py
SCHEMA=$STASH_ROOT/../shared/reference/emf-schema.json
[ -f "$SCHEMA" ] || SCHEMA=/work/shared/reference/emf-schema.json
AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

for f in "$SIM" "$FA" "$STASH"; do
  if [ ! -x "$f" ]; then
    echo "# missing $f"
    expect_eq "built: $f" yes no
    finish
  fi
done

# The function: a Runtime API loop in bash + curl.  The payload is a JSON string of
# space-separated requests, "sm:ID", "ssm:NAME" or "ssmd:NAME" (withDecryption=true); the answer
# is the list of statuses.  INIT_READ is one such request made by the init code.
cat >"$T/function.sh" <<'EOF'
#!/usr/bin/env bash
API=http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime
LOCAL=http://127.0.0.1:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
get() {
  local kind=${1%%:*} id=${1#*:} url
  case $kind in
    sm) url="$LOCAL/secretsmanager/get?secretId=$id" ;;
    ssm) url="$LOCAL/systemsmanager/parameters/get?name=$id" ;;
    *) url="$LOCAL/systemsmanager/parameters/get?name=$id&withDecryption=true" ;;
  esac
  curl -s -o /dev/null -w '%{http_code}' -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
    "$url"
}
for _ in $(seq 200); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$LOCAL/ping")" = 200 ] && break
  sleep 0.02
done
[ -n "$INIT_READ" ] && echo "init read $INIT_READ: $(get "$INIT_READ")"
while true; do
  hdr=$(mktemp)
  body=$(curl -s -D "$hdr" "$API/invocation/next") || exit 1
  rid=$(tr -d '\r' <"$hdr" | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *//p')
  rm -f "$hdr"
  body=${body#\"}
  body=${body%\"}
  out=""
  for req in $body; do
    out="$out $(get "$req")"
  done
  curl -s -o /dev/null -X POST "$API/invocation/$rid/response" -d "\"${out# }\""
done
EOF
chmod +x "$T/function.sh"
mkdir -p "$T/ext"
cat >"$T/ext/stash" <<WRAP
#!/usr/bin/env bash
exec -a "\$0" "$STASH"
WRAP
chmod +x "$T/ext/stash"

bg fa "$FA" --port 0 --data "$DATA" --access-key "$AKID" --secret-key "$SECRET"
for _ in $(seq 200); do grep -q 'listening on' "$T/fa.log" && break; sleep 0.05; done
FAP=$(sed -n 's/^fake-aws listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/fa.log")
check "fake-aws is up" test -n "$FAP"
FABASE=http://127.0.0.1:$FAP
upstream_calls() {
  curl -s "$FABASE/_fake/stats" | python3 -c '
import json, sys
ops = json.load(sys.stdin)["ops"]
print(ops["GetSecretValue"]["calls"] + ops["GetParameter"]["calls"])'
}

LOGS=$T/logs
mkdir -p "$LOGS"
"$SIM" --function "$T/function.sh" --extensions "$T/ext" --port 0 --logs "$LOGS" \
  --ready-file "$T/ready" --function-name prefetch-fn --max-envs 1 \
  --env AWS_ACCESS_KEY_ID=$AKID --env AWS_SECRET_ACCESS_KEY=$SECRET \
  --env AWS_ENDPOINT_URL=$FABASE --env INIT_READ=ssmd:/app/prod/db/password \
  --env STASH_PREFETCH_SECRETS=prod/api-key --env STASH_PREFETCH_PARAMETERS=/app/prod/db/password \
  --env PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=info >"$T/sim.log" 2>&1 &
SIMPID=$!
_pids+=("$SIMPID")
SIMP=""
for _ in $(seq 200); do
  [ -s "$T/ready" ] && SIMP=$(cat "$T/ready") && break
  sleep 0.05
done
check "lambda-sim is up" test -n "$SIMP"

hdr=$T/invoke.hdr
resp=$(curl -s -D "$hdr" -X POST -d '"sm:prod/api-key"' \
  "http://127.0.0.1:$SIMP/2015-03-31/functions/function/invocations")
RID=$(tr -d '\r' <"$hdr" | sed -n 's/^[Xx]-[Aa]mzn-[Rr]equest[Ii]d: *//p')
expect_eq "the invoke read the prefetched secret" '"200"' "$resp"
for _ in $(seq 250); do
  grep -aq "^END RequestId: $RID" "$LOGS"/* 2>/dev/null && break
  sleep 0.02
done
kill -TERM "$SIMPID" 2>/dev/null
wait "$SIMPID" 2>/dev/null

cat "$LOGS"/* 2>/dev/null | grep -a '^{"_aws"' >"$T/emf.jsonl"
expect_eq "fake-aws answered the two prefetches and nothing else" 2 "$(upstream_calls)"
expect_eq "init record: the prefetches' misses and calls (misses, SM, SSM, upstream)" "2 1 1 2" \
  "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("phase") == "init":
        print(d["CacheMisses"], d["SecretsManagerCalls"], d["ParameterStoreCalls"],
              d["UpstreamCalls"])
        break
else:
    print("no init line")
' "$T/emf.jsonl")"
expect_eq "init record: the init read was a hit or joined the prefetch" 1 "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("phase") == "init":
        print(d["CacheHits"] + d["singleFlightWaits"])
' "$T/emf.jsonl")"
expect_eq "invocation: one hit, no upstream call" "1 0 0" "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("requestId") == sys.argv[2]:
        print(d["CacheHits"], d["CacheMisses"], d["UpstreamCalls"])
' "$T/emf.jsonl" "$RID")"
expect_eq "the EMF lines count every upstream call fake-aws answered" "$(upstream_calls)" \
  "$(python3 -c '
import json, sys
print(sum(json.loads(l).get("UpstreamCalls", 0) for l in open(sys.argv[1])))' "$T/emf.jsonl")"
if [ -f "$VALIDATE" ]; then
  check "every EMF line passes the schema and the EMF rules" \
    python3 "$VALIDATE" "$SCHEMA" "$T/emf.jsonl"
fi
check "no secret value in any EMF line" \
  bash -c "! grep -aq -e 'sk_live_' -e 's3cure' '$T/emf.jsonl'"
finish
