#!/usr/bin/env bash
# stash as a Lambda extension, end to end: lambda-sim runs a bash+curl function with stash in its
# extensions directory, against fake-aws.  The function makes a known list of local requests per
# invoke; the EMF lines stash writes to the log stream must count exactly those hits and misses,
# carry exactly the figures of the sim's REPORT lines (the same platform.report), flag the cold
# start once, and the last invocation must be flushed at SHUTDOWN.  With --telemetry off the
# cache must still serve and the metrics still be written, without Lambda's figures.  Further runs:
# aggregate mode, configuration errors reported to Lambda, prefetch counted in the init record
# (also when it ends after the first INVOKE), and SHUTDOWN after a function timeout while stash waits on a silent upstream.
source "$(dirname "$0")/lib.bash"

SIM=$BUILD/bin/lambda-sim
FA=$BUILD/bin/fake-aws
STASH=$BUILD/extensions/stash
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
VALIDATE=$STASH_ROOT/tests/tools/emf_validate.py
SCHEMA=$STASH_ROOT/tests/data/emf-schema.json
AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

for f in "$SIM" "$FA" "$STASH"; do
  if [ ! -x "$f" ]; then
    echo "# missing $f"
    expect_eq "built: $f" yes no
    finish
  fi
done

# ---- the function: a Runtime API loop in bash + curl ------------------------------------------
# The invoke payload is a JSON string of space-separated requests, "sm:ID", "ssm:NAME" or
# "ssmd:NAME" (withDecryption=true); the response is the list of HTTP statuses stash gave.  During init it reads one secret, as a
# function's init code would (INIT_READ).
cat >"$T/function.sh" <<'EOF'
#!/usr/bin/env bash
API=http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime
LOCAL=http://127.0.0.1:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
get() {  # sm:ID | ssm:NAME | ssmd:NAME -> prints the status
  local kind=${1%%:*} id=${1#*:} url
  case $kind in
    sm) url="$LOCAL/secretsmanager/get?secretId=$id" ;;
    ssm) url="$LOCAL/systemsmanager/parameters/get?name=$id" ;;
    *) url="$LOCAL/systemsmanager/parameters/get?name=$id&withDecryption=true" ;;
  esac
  curl -s -o /dev/null -w '%{http_code}' -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
    "$url"
}
# stash serves from process start, but the runtime may start first: wait for /ping.
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
# stash runs under its own name (Lambda matches the registered name with the file name); the
# wrapper keeps argv[0] and records how stash exited, which the sim does not report.
mkdir -p "$T/ext"
cat >"$T/ext/stash" <<WRAP
#!/usr/bin/env bash
( exec -a "\$0" "$STASH" )
echo "stash exit status \$?" >>"$T/stash-exit.log"
WRAP
chmod +x "$T/ext/stash"

# ---- fake-aws -------------------------------------------------------------------------------
start_fake_aws --data "$DATA" --access-key "$AKID" --secret-key "$SECRET"
FABASE=http://127.0.0.1:$FAP
upstream_calls() {  # every call fake-aws answered so far
  curl -s "$FABASE/_fake/stats" | python3 -c '
import json, sys
ops = json.load(sys.stdin)["ops"]
print(sum(ops[o]["calls"] for o in
          ("GetSecretValue", "GetParameter", "BatchGetSecretValue", "GetParameters")))'
}

# Starts lambda-sim (extra args appended) with stash and the function; sets SIMP and SIMPID.
# --timeout 30 and --init-timeout 60 unless the extra args say otherwise (a later option wins):
# on a loaded machine the bash function's curls through stash to fake-aws took over the default
# 3 s, and a timeout resets the environment (a second stash, a second aggregate line).
start_sim() {
  local name=$1
  shift
  mkdir -p "$T/logs-$name"
  "$SIM" --function "$T/function.sh" --extensions "$T/ext" --port 0 --logs "$T/logs-$name" \
    --ready-file "$T/ready-$name" --function-name e2e-fn --max-envs 1 --timeout 30 \
    --init-timeout 60 \
    --env AWS_ACCESS_KEY_ID=$AKID --env AWS_SECRET_ACCESS_KEY=$SECRET \
    --env AWS_ENDPOINT_URL=$FABASE --env INIT_READ=sm:prod/db \
    --env PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=info "$@" >"$T/sim-$name.log" 2>&1 &
  SIMPID=$!
  _pids+=("$SIMPID")
  SIMP=""
  for _ in $(seq 200); do
    [ -s "$T/ready-$name" ] && SIMP=$(cat "$T/ready-$name") && break
    sleep 0.05
  done
}

# Invokes with payload "$1"; prints "REQUEST_ID RESPONSE".
invoke() {
  local hdr=$T/invoke.hdr body rid
  body=$(curl -s -D "$hdr" -X POST -d "\"$1\"" \
    "http://127.0.0.1:$SIMP/2015-03-31/functions/function/invocations")
  rid=$(tr -d '\r' <"$hdr" | sed -n 's/^[Xx]-[Aa]mzn-[Rr]equest[Ii]d: *//p')
  echo "$rid $body"
}

# The caller has its answer as soon as the function responds, but the invoke ends (END line) only
# once the runtime and every extension have called next again.  One environment (--max-envs 1)
# takes the next invoke only then (else 429), and Lambda never spins an environment down in the
# middle of an invoke: wait for the END line before either.
wait_end() {
  local dir=$1 rid=$2
  for _ in $(seq 250); do
    grep -aq "^END RequestId: $rid" "$dir"/* 2>/dev/null && return 0
    sleep 0.02
  done
  echo "# no END line for $rid"
  return 1
}

# SIGTERM makes lambda-sim spin every environment down (SHUTDOWN spindown).  With no arguments
# (an init that failed: no invoke to wait for), at once.
stop_sim() {
  [ $# -eq 0 ] || wait_end "$1" "$2"
  kill -TERM "$SIMPID" 2>/dev/null
  wait "$SIMPID" 2>/dev/null
}

# The EMF lines of a log directory, one JSON object per line.
emf_lines() {
  cat "$1"/* 2>/dev/null | grep -a '^{"_aws"'
}

# Prints field F of the EMF line whose requestId is R ("-" if absent, "none" if no line).
emf_field() {
  local dir=$1 rid=$2 field=$3
  emf_lines "$dir" | python3 -c '
import json, sys
rid, field = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    d = json.loads(line)
    if d.get("requestId") == rid:
        v = d.get(field, "-")
        print(json.dumps(v) if not isinstance(v, str) else v)
        break
else:
    print("none")
' "$rid" "$field"
}

# Prints field F ("Duration", "Billed Duration", ...) of the REPORT line of request R.
report_field() {
  local dir=$1 rid=$2 field=$3
  cat "$dir"/* | grep -a "^REPORT RequestId: $rid" | tr '\t' '\n' |
    sed -n "s/^$field: \([0-9.]*\) \(ms\|MB\)$/\1/p"
}

# ---- run 1: telemetry on --------------------------------------------------------------------
start_sim on
check "lambda-sim is up (telemetry on)" test -n "$SIMP"

# What each invoke asks for, and what it must count (TTL 300 s: the second read is a hit).
PAY=("sm:prod/db ssm:/app/prod/db/host ssm:/app/prod/db/host"
  "sm:prod/api-key sm:prod/api-key sm:prod/db"
  "sm:prod/db sm:prod/db sm:prod/db")
WANT_HITS=(2 2 3)
WANT_MISSES=(1 1 0)
WANT_SM=(0 1 0)
WANT_SSM=(1 0 0)
RIDS=()
LOGS=$T/logs-on
for i in 0 1 2; do
  read -r rid resp < <(invoke "${PAY[$i]}")
  RIDS+=("$rid")
  expect_eq "invoke $i answered by the function through stash" '"200 200 200"' "$resp"
  [ "$i" = 2 ] || wait_end "$LOGS" "$rid"
done
stop_sim "$LOGS" "${RIDS[2]}"

check "stash registered and subscribed" grep -aq 'subscribed to platform telemetry' "$LOGS"/*
expect_eq "stash exited 0 after SHUTDOWN" "stash exit status 0" "$(tail -1 "$T/stash-exit.log")"
check "SHUTDOWN reached stash and it flushed" grep -aq 'shutdown (spindown)' "$LOGS"/*
check "no telemetry warning when the subscription succeeds" \
  bash -c "! grep -aq 'telemetry unavailable' '$LOGS'/*"
for i in 0 1 2; do
  rid=${RIDS[$i]}
  expect_eq "invoke $i: CacheHits" "${WANT_HITS[$i]}" "$(emf_field "$LOGS" "$rid" CacheHits)"
  expect_eq "invoke $i: CacheMisses" "${WANT_MISSES[$i]}" "$(emf_field "$LOGS" "$rid" CacheMisses)"
  expect_eq "invoke $i: SecretsManagerCalls" "${WANT_SM[$i]}" \
    "$(emf_field "$LOGS" "$rid" SecretsManagerCalls)"
  expect_eq "invoke $i: ParameterStoreCalls" "${WANT_SSM[$i]}" \
    "$(emf_field "$LOGS" "$rid" ParameterStoreCalls)"
  expect_eq "invoke $i: one FetchLatency value per request" 3 \
    "$(emf_field "$LOGS" "$rid" FetchLatency | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
  # Lambda's figures: the same platform.report the sim printed as its REPORT line.
  check "invoke $i: the sim printed its REPORT" test -n "$(report_field "$LOGS" "$rid" Duration)"
  dur=$(emf_field "$LOGS" "$rid" Duration)
  expect_eq "invoke $i: Duration matches REPORT" "$(report_field "$LOGS" "$rid" Duration)" \
    "$(python3 -c "print('%.2f' % float('$dur'))" 2>/dev/null)"
  expect_eq "invoke $i: BilledDuration matches REPORT" \
    "$(report_field "$LOGS" "$rid" 'Billed Duration')" "$(emf_field "$LOGS" "$rid" BilledDuration)"
  expect_eq "invoke $i: MaxMemoryUsed matches REPORT" \
    "$(report_field "$LOGS" "$rid" 'Max Memory Used')" "$(emf_field "$LOGS" "$rid" MaxMemoryUsed)"
    # The number belongs to the benchmarks; here only that Lambda's span came through.
  check "invoke $i: ExtensionOverhead present" \
    python3 -c "float('$(emf_field "$LOGS" "$rid" ExtensionOverhead)')"
done
# The first invocation carries the environment's init; the others do not.
init=$(emf_field "$LOGS" "${RIDS[0]}" InitDuration)
check "invoke 0: the REPORT has an Init Duration" \
  test -n "$(report_field "$LOGS" "${RIDS[0]}" 'Init Duration')"
expect_eq "invoke 0: InitDuration matches REPORT" \
  "$(report_field "$LOGS" "${RIDS[0]}" 'Init Duration')" \
  "$(python3 -c "print('%.2f' % float('$init'))" 2>/dev/null)"
expect_eq "invoke 1: no InitDuration" "-" "$(emf_field "$LOGS" "${RIDS[1]}" InitDuration)"
expect_eq "cold start flagged on the first invocation" 1 \
  "$(emf_field "$LOGS" "${RIDS[0]}" ColdStart)"
expect_eq "cold start flagged once per environment" 1 \
  "$(emf_lines "$LOGS" | grep -c '"ColdStart":1')"
# The read made by the function's init code is its own record (no requestId).
expect_eq "init record: one miss, one Secrets Manager call" "1 1" \
  "$(emf_lines "$LOGS" | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    if not d.get("requestId"):
        print(d.get("CacheMisses"), d.get("SecretsManagerCalls"))
')"
# Exactly one line per invocation plus the init record: nothing lost, nothing twice.
expect_eq "one EMF line per invocation, plus init" 4 "$(emf_lines "$LOGS" | wc -l)"
emf_lines "$LOGS" >"$T/emf-on.jsonl"
if [ -f "$VALIDATE" ]; then
  check "every EMF line passes the schema and the EMF rules" \
    python3 "$VALIDATE" "$SCHEMA" "$T/emf-on.jsonl"
fi
check "no secret value in any EMF line" \
  bash -c "! grep -aq -e 'n3w-Pa55word' -e 'sk_live_' -e 'db.internal' '$T/emf-on.jsonl'"

# invoke_two DESC: invokes PAY[0] then PAY[1] on the one environment (waiting for the first to
# end), checks each was answered "200 200 200" (DESC is a printf format taking the invoke's
# index), and leaves their request ids in RIDS.  $LOGS is the run's log directory.
invoke_two() {
  local i rid resp
  RIDS=()
  for i in 0 1; do
    read -r rid resp < <(invoke "${PAY[$i]}")
    RIDS+=("$rid")
    # shellcheck disable=SC2059 # DESC is the caller's format
    expect_eq "$(printf "$1" "$i")" '"200 200 200"' "$resp"
    [ "$i" = 1 ] || wait_end "$LOGS" "$rid"
  done
}

# ---- run 2: telemetry refused (as AWS's emulator does) ---------------------------------------
start_sim off --telemetry off
check "lambda-sim is up (telemetry off)" test -n "$SIMP"
LOGS=$T/logs-off
invoke_two "telemetry off: invoke %d still served by the cache"
stop_sim "$LOGS" "${RIDS[1]}"
expect_eq "telemetry off: stash exited 0 after SHUTDOWN" "stash exit status 0" \
  "$(tail -1 "$T/stash-exit.log")"
expect_eq "telemetry off: exactly one warning" 1 \
  "$(cat "$LOGS"/* | grep -ac 'telemetry unavailable')"
for i in 0 1; do
  expect_eq "telemetry off: invoke $i CacheHits" "${WANT_HITS[$i]}" \
    "$(emf_field "$LOGS" "${RIDS[$i]}" CacheHits)"
  expect_eq "telemetry off: invoke $i CacheMisses" "${WANT_MISSES[$i]}" \
    "$(emf_field "$LOGS" "${RIDS[$i]}" CacheMisses)"
  expect_eq "telemetry off: invoke $i has no Duration" "-" \
    "$(emf_field "$LOGS" "${RIDS[$i]}" Duration)"
done
expect_eq "telemetry off: cold start still flagged on the first" 1 \
  "$(emf_field "$LOGS" "${RIDS[0]}" ColdStart)"
emf_lines "$LOGS" >"$T/emf-off.jsonl"
if [ -f "$VALIDATE" ]; then
  check "telemetry off: every EMF line valid" python3 "$VALIDATE" "$SCHEMA" "$T/emf-off.jsonl"
fi

# ---- run 3: aggregate mode: one line for the whole interval, written at SHUTDOWN -------------
start_sim agg --env STASH_METRICS_MODE=aggregate --env STASH_AGGREGATE_INTERVAL_SECONDS=3600
check "lambda-sim is up (aggregate)" test -n "$SIMP"
LOGS=$T/logs-agg
RIDS=()
for i in 0 1 2; do
  read -r rid resp < <(invoke "${PAY[$i]}")
  RIDS+=("$rid")
  expect_eq "aggregate: invoke $i served" '"200 200 200"' "$resp"
  [ "$i" = 2 ] || wait_end "$LOGS" "$rid"
done
stop_sim "$LOGS" "${RIDS[2]}"
expect_eq "aggregate: one line for the interval" 1 "$(emf_lines "$LOGS" | wc -l)"
# Sums over the three invocations and the init record; Lambda's figures as arrays.
want_durations=$(for rid in "${RIDS[@]}"; do report_field "$LOGS" "$rid" Duration; done |
  LC_ALL=C sort | tr '\n' ' ')
expect_eq "aggregate: counts summed, durations those of the REPORT lines" \
  "3 1 7 3 1 1 3 ${want_durations% }" "$(emf_lines "$LOGS" | python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())
durs = " ".join(sorted("%.2f" % v for v in d["Duration"]))
print(d["invocations"], d["initRecords"], d["CacheHits"], d["CacheMisses"], d["ColdStart"],
      d["ParameterStoreCalls"], len(d["ExtensionOverhead"]), durs)
')"
emf_lines "$LOGS" >"$T/emf-agg.jsonl"
if [ -f "$VALIDATE" ]; then
  check "aggregate: the line is valid EMF" python3 "$VALIDATE" "$SCHEMA" "$T/emf-agg.jsonl"
fi

# ---- run 4: an invalid setting is reported to Lambda, not hidden ------------------------------
start_sim bad --env STASH_METRICS_MODE=loud
check "lambda-sim is up (bad config)" test -n "$SIMP"
read -r rid resp < <(invoke "sm:prod/db")
stop_sim
check "bad config: stash names the variable" grep -aq 'STASH_METRICS_MODE' "$T"/logs-bad/*
check "bad config: init/error reached Lambda as Extension.ConfigInvalid" \
  grep -aq 'Extension\.ConfigInvalid' "$T"/logs-bad/* "$T/sim-bad.log"
# (Its exit status is not checked here: after an init error the platform may kill the
# environment's processes before the wrapper records it.)

# ---- run 5: the local API's port is taken: the init fails with the reason ---------------------
start_sim busy --env PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=$FAP
check "lambda-sim is up (port taken)" test -n "$SIMP"
read -r rid resp < <(invoke "sm:prod/db")
stop_sim
check "port taken: init/error reached Lambda as Extension.LocalApiUnavailable" \
  grep -aq 'Extension\.LocalApiUnavailable' "$T"/logs-busy/* "$T/sim-busy.log"

# ---- run 6: prefetch work is counted, in the init record ---------------------------------------
# Requests made during init, prefetch work included, form the init record.  The function's init
# code reads the last prefetched parameter (so the prefetch is done before the first INVOKE), then
# one invoke reads the prefetched secret.  The EMF lines must account for every upstream call
# fake-aws answered in this run: the two prefetch misses in the init record, none in the invoke.
calls_before=$(upstream_calls)
start_sim prefetch --env INIT_READ=ssmd:/app/prod/db/password \
  --env STASH_PREFETCH_SECRETS=prod/api-key --env STASH_PREFETCH_PARAMETERS=/app/prod/db/password
check "lambda-sim is up (prefetch)" test -n "$SIMP"
LOGS=$T/logs-prefetch
read -r rid resp < <(invoke "sm:prod/api-key")
expect_eq "prefetch: the invoke read the prefetched secret" '"200"' "$resp"
stop_sim "$LOGS" "$rid"
emf_lines "$LOGS" >"$T/emf-prefetch.jsonl"
calls=$(($(upstream_calls) - calls_before))
expect_eq "prefetch: fake-aws answered the two prefetches and nothing else" 2 "$calls"
expect_eq "prefetch: init record: misses, SM, SSM, upstream calls" "2 1 1 2" "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("phase") == "init":
        print(d["CacheMisses"], d["SecretsManagerCalls"], d["ParameterStoreCalls"],
              d["UpstreamCalls"])
        break
else:
    print("no init line")
' "$T/emf-prefetch.jsonl")"
expect_eq "prefetch: the init read was a hit or joined the prefetch" 1 "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("phase") == "init":
        print(d["CacheHits"] + d["singleFlightWaits"])
' "$T/emf-prefetch.jsonl")"
expect_eq "prefetch: invocation: one hit, no miss, no upstream call" "1 0 0" \
  "$(emf_field "$LOGS" "$rid" CacheHits) $(emf_field "$LOGS" "$rid" CacheMisses) $(emf_field "$LOGS" "$rid" UpstreamCalls)"
expect_eq "prefetch: the EMF lines count every upstream call fake-aws answered" "$calls" \
  "$(python3 -c '
import json, sys
print(sum(json.loads(l).get("UpstreamCalls", 0) for l in open(sys.argv[1])))' "$T/emf-prefetch.jsonl")"
if [ -f "$VALIDATE" ]; then
  check "prefetch: every EMF line valid" python3 "$VALIDATE" "$SCHEMA" "$T/emf-prefetch.jsonl"
fi
check "prefetch: no secret value in any EMF line" \
  bash -c "! grep -aq -e 'sk_live_' -e 's3cure' '$T/emf-prefetch.jsonl'"

# ---- run 6b: prefetch still running when the first INVOKE comes: still init work -------------
# Prefetch runs beside the event loop, so it may end after the first INVOKE; its work is tagged
# init work when it starts and must land in the init record whatever the timing.  fake-aws holds
# the prefetch's BatchGetSecretValue for 8 s; nothing in init waits for it, so invocation 1 (one SSM
# miss) runs and ends while the prefetch is in flight, which the test checks rather than assumes.
fa_stat() {  # prints one top-level counter of fake-aws's /_fake/stats
  curl -s "$FABASE/_fake/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
calls_before=$(upstream_calls)
check "fake-aws takes a hang for the next BatchGetSecretValue" \
  curl -sf -o /dev/null -X POST "$FABASE/_fake/hang?op=BatchGetSecretValue&count=1&ms=8000"
start_sim late --env INIT_READ= --env STASH_PREFETCH_SECRETS=prod/api-key
check "lambda-sim is up (late prefetch)" test -n "$SIMP"
LOGS=$T/logs-late
RIDS=()
read -r rid resp < <(invoke "ssm:/app/prod/db/host")
RIDS+=("$rid")
expect_eq "late prefetch: invoke 0 served" '"200"' "$resp"
wait_end "$LOGS" "$rid"
expect_eq "late prefetch: the prefetch was still in flight when invocation 0 ended" 1 \
  "$(fa_stat in_flight)"
for _ in $(seq 300); do [ "$(fa_stat in_flight)" = 0 ] && break; sleep 0.1; done
expect_eq "late prefetch: the prefetch then completed" 0 "$(fa_stat in_flight)"
read -r rid resp < <(invoke "sm:prod/api-key")
RIDS+=("$rid")
expect_eq "late prefetch: invoke 1 read the prefetched secret" '"200"' "$resp"
stop_sim "$LOGS" "$rid"
emf_lines "$LOGS" >"$T/emf-late.jsonl"
calls=$(($(upstream_calls) - calls_before))
expect_eq "late prefetch: fake-aws answered the prefetch and invocation 0's miss" 2 "$calls"
expect_eq "late prefetch: one init line: misses, SM, SSM, upstream calls" "1 1 0 1" "$(python3 -c '
import json, sys
init = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l).get("phase") == "init"]
if len(init) != 1:
    print("%d init lines" % len(init))
else:
    d = init[0]
    print(d["CacheMisses"], d["SecretsManagerCalls"], d["ParameterStoreCalls"], d["UpstreamCalls"])
' "$T/emf-late.jsonl")"
expect_eq "late prefetch: invocation 0 has its own miss and not the prefetch's call" "1 0 1 1" \
  "$(emf_field "$LOGS" "${RIDS[0]}" CacheMisses) $(emf_field "$LOGS" "${RIDS[0]}" SecretsManagerCalls) $(emf_field "$LOGS" "${RIDS[0]}" ParameterStoreCalls) $(emf_field "$LOGS" "${RIDS[0]}" UpstreamCalls)"
expect_eq "late prefetch: invocation 1: one hit, no upstream call" "1 0" \
  "$(emf_field "$LOGS" "${RIDS[1]}" CacheHits) $(emf_field "$LOGS" "${RIDS[1]}" UpstreamCalls)"
expect_eq "late prefetch: the EMF lines count every upstream call fake-aws answered" "$calls" \
  "$(python3 -c '
import json, sys
print(sum(json.loads(l).get("UpstreamCalls", 0) for l in open(sys.argv[1])))' "$T/emf-late.jsonl")"
if [ -f "$VALIDATE" ]; then
  check "late prefetch: every EMF line valid" python3 "$VALIDATE" "$SCHEMA" "$T/emf-late.jsonl"
fi

# ---- run 7: the function times out while stash waits on a silent upstream ---------------------
# Lambda then sends SHUTDOWN (timeout) with a 2 s budget and kills what is still running.  The
# upstream accepts connections and never answers, and no upstream timeout is set (AWS's default):
# stash must abandon the call, answer its request, write the invocation's record and exit 0
# inside the budget.  Without that it would sit in the call until the 30 s stall limit, be
# killed, and the invocation's EMF line would be lost.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
time.sleep(120)
' >"$T/silent.port" &
_pids+=($!)
for _ in $(seq 100); do [ -s "$T/silent.port" ] && break; sleep 0.05; done
SILENT=$(head -1 "$T/silent.port")
check "a silent upstream is listening" test -n "$SILENT"
exits_before=$(wc -l <"$T/stash-exit.log")
start_sim hang --timeout 1 --env INIT_READ= --env AWS_ENDPOINT_URL=http://127.0.0.1:$SILENT
check "lambda-sim is up (silent upstream)" test -n "$SIMP"
LOGS=$T/logs-hang
read -r rid resp < <(invoke "sm:prod/db")
check "hang: the caller got the function's timeout" grep -q 'Task timed out\|timed out\|Timeout' <<<"$resp"
for _ in $(seq 150); do
  [ "$(wc -l <"$T/stash-exit.log")" -gt "$exits_before" ] && break
  sleep 0.05
done
expect_eq "hang: stash exited 0 after SHUTDOWN (timeout)" "stash exit status 0" \
  "$(tail -1 "$T/stash-exit.log")"
check "hang: SHUTDOWN said timeout and stash flushed" grep -aq 'shutdown (timeout)' "$LOGS"/*
expect_eq "hang: the invocation's record: 1 miss, 1 Secrets Manager call, 1 upstream error" \
  "1 1 1" "$(emf_field "$LOGS" "$rid" CacheMisses) $(emf_field "$LOGS" "$rid" SecretsManagerCalls) $(emf_field "$LOGS" "$rid" UpstreamErrors)"
stop_sim

# ---- run: Lambda's JSON log format: stash's own lines become JSON objects, EMF lines do not ----
start_sim json --env AWS_LAMBDA_LOG_FORMAT=JSON --env AWS_LAMBDA_LOG_LEVEL=DEBUG \
  --env PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=
check "lambda-sim is up (JSON log format)" test -n "$SIMP"
LOGS=$T/logs-json
invoke_two "JSON logs: invoke %d served"
stop_sim "$LOGS" "${RIDS[1]}"
check "JSON logs: no text-format line from stash" bash -c "! grep -aq '^\[stash\]' '$LOGS'/*"
expect_eq "JSON logs: every stash line one object with Lambda's fields, DEBUG honoured, no secret" \
  "ok" "$(cat "$LOGS"/* | python3 -c '
import json, re, sys
n, levels = 0, set()
for line in sys.stdin:
    if not line.startswith("{\"timestamp\""):
        continue
    d = json.loads(line)
    assert list(d)[:3] == ["timestamp", "level", "message"], d
    assert d["logger"] == "stash" and d["module"], d
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["timestamp"]), d
    assert d["level"] in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"), d
    assert not any(s in line for s in sys.argv[1:]), "a secret in a log line"
    levels.add(d["level"])
    n += 1
print("ok" if n >= 10 and "DEBUG" in levels else "only %d lines, levels %s" % (n, levels))
' "$SECRET" n3w-Pa55word sk_live_ db.internal)"
emf_lines "$LOGS" >"$T/emf-json.jsonl"
if [ -f "$VALIDATE" ]; then
  check "JSON logs: every EMF line still valid EMF" python3 "$VALIDATE" "$SCHEMA" "$T/emf-json.jsonl"
fi
# The same two payloads as the first two invokes of run 1: their lines carry the same fields.
expect_eq "JSON logs: the EMF lines have the same fields as in text format" "same" \
  "$(python3 -c '
import json, sys
def keys(f):
    lines = [json.loads(l) for l in open(f)]
    return [sorted(d) for d in lines if "requestId" in d][:2]
a, b = keys(sys.argv[1]), keys(sys.argv[2])
print("same" if len(a) == 2 and a == b else "differ: %s / %s" % (a, b))
' "$T/emf-on.jsonl" "$T/emf-json.jsonl")"

finish
