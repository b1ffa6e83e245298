#!/usr/bin/env bash
# lambda-sim end to end: a minimal extension (tests/integration/lambda_sim/ext.py) and runtime
# (lambda_sim/runtime.sh), not stash, drive every Runtime/Extensions/Telemetry API path and
# ordering rule; lambda_sim/checks.py asserts on what they recorded (one "ok"/"not ok" per fact).
# Scenarios: lifecycle+telemetry+freeze+malformed calls; forced concurrency; timeout and crash
# resets; init error and init timeout; SHUTDOWN budget with an extension that ignores it;
# --telemetry off.
source "$(dirname "$0")/lib.bash"
SIM=$BUILD/bin/lambda-sim
D=$STASH_ROOT/tests/integration/lambda_sim
CHECKS=$D/checks.py

# Feeds checks.py's "ok - ..." / "not ok - ..." lines into this script's tally.
py_checks() {
  local line rc
  python3 "$CHECKS" "$@" >"$T/checks.out" 2>&1
  rc=$?
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) _result 0 "${line#ok - }" ;;
      "not ok - "*) _result 1 "${line#not ok - }" ;;
      *) echo "#   $line" ;;
    esac
  done <"$T/checks.out"
  _result "$rc" "checks.py $1 ran to its end"
}

# start_sim NAME ARGS...: runs lambda-sim on a free port; sets PORT and SIM_PID.
# --init-timeout 60 unless ARGS say otherwise (a later option wins): on a loaded machine three
# environments starting python and bash at once can take longer than Lambda's 10 s, and only
# the init-timeout scenario is about that limit.
start_sim() {
  local name=$1 end=$((${EPOCHREALTIME/./} + 30000000))
  shift
  rm -f "$T/$name.ready"
  bg "$name" "$SIM" --port 0 --ready-file "$T/$name.ready" --init-timeout 60 "$@"
  SIM_PID=${_pids[-1]}
  until [ -s "$T/$name.ready" ] || [ "${EPOCHREALTIME/./}" -ge "$end" ]; do
    sleep 0.02
  done
  PORT=$(cat "$T/$name.ready" 2>/dev/null)
}

# invoke NAME PAYLOAD: POST to the invoke endpoint; headers in $T/NAME.h, body in $T/NAME.b,
# "<epoch ns> caller answered <name>" appended to $T/caller.log when the answer is in.
invoke() {
  echo "${EPOCHREALTIME/./}000 caller sending $1" >>"$T/caller.log"
  curl -sS -o "$T/$1.b" -D "$T/$1.h" -H 'Content-Type: application/json' --data-binary "$2" \
    "http://127.0.0.1:$PORT/2015-03-31/functions/function/invocations"
  echo "${EPOCHREALTIME/./}000 caller answered $1" >>"$T/caller.log"
}

hdr() {  # hdr NAME HEADER: value of a response header
  grep -i "^$2:" "$T/$1.h" | head -1 | cut -d' ' -f2- | tr -d '\r'
}

# wait_reports DIR N: waits until the log streams in DIR hold N REPORT lines in all, i.e. N invokes
# have ended and their environments are idle again (lambda-sim writes an invoke's REPORT line and
# marks its environment idle under one lock).  The limit is in time, and generous: on a loaded
# machine each look costs a fork or two, and everything is slow.
wait_reports() {
  local n end=$((${EPOCHREALTIME/./} + 60000000))
  while :; do
    n=$(cat "$1"/*.log 2>/dev/null | grep -c '^REPORT RequestId')
    [ "$n" -ge "$2" ] && return 0
    [ "${EPOCHREALTIME/./}" -ge "$end" ] && break
    sleep 0.02
  done
  echo "# $1: $n REPORT lines after 60 s, want $2" >&2
  return 1
}

# wait_rec FILE PATTERN N: waits until FILE holds N lines matching the grep PATTERN.
wait_rec() {
  local n end=$((${EPOCHREALTIME/./} + 60000000))
  while :; do
    n=$(grep -c -- "$2" "$1" 2>/dev/null)
    [ "${n:-0}" -ge "$3" ] && return 0
    [ "${EPOCHREALTIME/./}" -ge "$end" ] && break
    sleep 0.02
  done
  echo "# $1: ${n:-0} lines like '$2' after 60 s, want $3" >&2
  return 1
}

# The clock is read without a fork (EPOCHREALTIME, µs): on a loaded machine a `date` process
# alone can take a good part of the slack STOP_MS is checked against.
stop_sim() {  # SIGTERM, wait, set STOP_MS to how long it took
  local t0=${EPOCHREALTIME/./}
  echo "${t0}000 caller sigterm" >>"$T/caller.log"
  kill -TERM "$SIM_PID"
  wait "$SIM_PID"
  SIM_RC=$?
  STOP_MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

[ -x "$SIM" ] || { echo "not ok - $SIM is not built"; echo "0 passed, 1 failed"; exit 1; }

# ---- help and bad command lines ---------------------------------------------------------------
check "--help prints the usage" bash -c "'$SIM' --help | grep -q -- '--max-envs'"
"$SIM" --port 0 >/dev/null 2>&1
expect_eq "no --function is a usage error (exit 2)" 2 $?
"$SIM" --function true --memory 64 >/dev/null 2>&1
expect_eq "--memory below 128 is refused" 2 $?

# ---- 1. lifecycle, telemetry, freeze, malformed calls -----------------------------------------
mkdir -p "$T/ext1" "$T/logs1"
cp "$D/ext.py" "$T/ext1/alpha"
cp "$D/ext.py" "$T/ext1/beta"
REC=$T/rec1.log
: >"$REC"
: >"$T/caller.log"
start_sim sim1 --function "$D/runtime.sh" --extensions "$T/ext1" --logs "$T/logs1" \
  --timeout 5 --memory 256 --function-name lifecycle-fn \
  --env EXT_REC="$REC" --env RT_REC="$REC" --env EXTRA_VAR=extra-value \
  --env EXT_PROBE=alpha --env EXT_HOLD_MS=400 --env EXT_WAIT_RUNTIMEDONE=1 \
  --env EXT_TYPES=platform,function,extension \
  --env EXT_EVENTS_beta=SHUTDOWN --env EXT_TYPES_beta=platform --env EXT_INIT_SLEEP_MS_beta=300
check "lambda-sim prints its port" grep -q "^lambda-sim listening on 127.0.0.1:$PORT\$" "$T/sim1.log"
# alpha: INVOKE+SHUTDOWN, probes malformed calls, holds each invoke 600 ms after runtimeDone;
# beta: SHUTDOWN only, platform telemetry only, registers 300 ms late (EXT_<knob>_<name> picks
# per extension).
# Each invoke keeps the environment busy ~400 ms after the caller's answer (alpha's hold); an
# invoke meanwhile would start a second environment, so each next invoke waits until the last one
# ended (its REPORT line), and 300 ms more: a report not held back by the freeze would be
# delivered in that time (batches of timeoutMs 25), before the next invoke is sent.
invoke inv1 '{"op":"echo","n":1}'
wait_reports "$T/logs1" 1
sleep 0.3
invoke inv2 '{"op":"echo","n":2}'
wait_reports "$T/logs1" 2
sleep 0.3
invoke inv3 '{"op":"error"}'
wait_reports "$T/logs1" 3
sleep 0.3
invoke inv4 '{"op":"bogus"}'
wait_reports "$T/logs1" 4
sleep 0.3
expect_eq "function response reaches the caller" true \
  "$(python3 -c 'import json,sys; print(str(json.load(open(sys.argv[1]))["ok"]).lower())' "$T/inv1.b")"
expect_eq "invoke answers carry the request id" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/inv2.b")" "$(hdr inv2 X-Amzn-RequestId)"
expect_eq "function error: X-Amz-Function-Error" Unhandled "$(hdr inv3 X-Amz-Function-Error)"
check "function error: body is the runtime's error document" grep -q '"errorType":"Boom"' "$T/inv3.b"
API=$(awk '$3 == "env" && $2 == "runtime" {print $5; exit}' "$REC")
code=$(curl -s -o "$T/x.b" -w '%{http_code}' "http://$API/2018-06-01/nothing")
expect_eq "unknown Runtime API path: 404" 404 "$code"
code=$(curl -s -o "$T/x.b" -w '%{http_code}' -X DELETE "http://$API/2020-01-01/extension/register")
expect_eq "wrong method: 405" 405 "$code"
code=$(curl -s -o "$T/x.b" -w '%{http_code}' -X PUT -d '{}' "http://$API/2020-08-15/logs")
expect_eq "Logs API: 202 Logs.NotSupported, as RIE" "202" "$code"
code=$(curl -s -o "$T/x.b" -w '%{http_code}' -X POST "http://$API/2020-01-01/extension/register" \
  -H 'Lambda-Extension-Name: alpha' -d '{"events":["INVOKE"]}')
expect_eq "register after init: 403" 403 "$code"
check "register after init: Extension.RegistrationClosed" grep -q RegistrationClosed "$T/x.b"
code=$(curl -s -o /dev/null -w '%{http_code}' -d 'x' "http://127.0.0.1:$PORT/2015-03-31/functions/function/nope")
expect_eq "invoke endpoint: unknown path 404" 404 "$code"
head -c 6291457 /dev/zero | tr '\0' 'a' >"$T/big.json"
code=$(curl -s -o "$T/x.b" -w '%{http_code}' --data-binary @"$T/big.json" "http://127.0.0.1:$PORT/2015-03-31/functions/function/invocations")
expect_eq "invoke over 6 MB: 413" 413 "$code"
sleep 0.2
stop_sim
expect_eq "lambda-sim exits 0 on SIGTERM" 0 "$SIM_RC"
check "SIGTERM: every environment shut down inside the 2000 ms budget (+slack)" test "$STOP_MS" -lt 3000
py_checks lifecycle "$REC" "$T/caller.log" "$T/logs1"

# ---- 2. forced concurrency: three environments, a fourth invoke is throttled -------------------
mkdir -p "$T/ext2" "$T/logs2"
cp "$D/ext.py" "$T/ext2/gamma"
REC=$T/rec2.log
: >"$REC"
# The three invokes hold their environments until $T/release2 exists: c4 is sent while all three
# run (their runtimes got them), c5 once all three ended (a REPORT line each).  --timeout 30: the
# first environment's invoke must outlast the other two inits on a loaded machine.
start_sim sim2 --function "$D/runtime.sh" --extensions "$T/ext2" --logs "$T/logs2" --max-envs 3 \
  --timeout 30 --env EXT_REC="$REC" --env RT_REC="$REC" --env EXT_SUBSCRIBE=0
cpids=()
for i in 1 2 3; do
  invoke "c$i" "{\"op\":\"hold\",\"f\":\"$T/release2\"}" &
  cpids+=($!)
done
wait_rec "$REC" ' runtime got ' 3
invoke c4 '{"op":"echo"}'
expect_eq "beyond --max-envs: 429" 429 "$(head -1 "$T/c4.h" | cut -d' ' -f2)"
expect_eq "beyond --max-envs: TooManyRequestsException" TooManyRequestsException "$(hdr c4 X-Amzn-ErrorType)"
touch "$T/release2"
wait "${cpids[@]}"
wait_reports "$T/logs2" 3
invoke c5 '{"op":"echo"}'
stop_sim
py_checks concurrency "$REC" "$T/logs2" "$T/c1.b" "$T/c2.b" "$T/c3.b" "$T/c5.b"

# ---- 2b. --queue-ms: an invoke waits for the busy environment instead of a 429 -----------------
# q1 holds the one environment until $T/release2b exists; q2 is sent once q1's runtime has it.
start_sim sim2b --function "$D/runtime.sh" --max-envs 1 --queue-ms 5000 --timeout 30 \
  --env RT_REC="$T/rec2b.log"
invoke q1 "{\"op\":\"hold\",\"f\":\"$T/release2b\"}" &
qpid=$!
wait_rec "$T/rec2b.log" ' runtime got ' 1
invoke q2 '{"op":"echo"}' &
q2pid=$!
sleep 0.5
touch "$T/release2b"
wait "$qpid" "$q2pid"
expect_eq "--queue-ms: the queued invoke is answered 200" 200 "$(head -1 "$T/q2.h" | cut -d' ' -f2)"
expect_eq "--queue-ms: it ran in the same environment" \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/q1.b")" \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/q2.b")"
stop_sim

# ---- 3. timeout and crash reset the environment -----------------------------------------------
mkdir -p "$T/ext3" "$T/logs3"
cp "$D/ext.py" "$T/ext3/delta"
REC=$T/rec3.log
: >"$REC"
# --max-envs 1: the invoke after a reset waits for the environment's SHUTDOWN instead of a 429.
# --timeout 2: t1 (4 s) times out; t2 must crash and t3 answer within it, on a loaded machine too
# (with 1 s a bash runtime there sometimes timed out on the echo).
start_sim sim3 --function "$D/runtime.sh" --extensions "$T/ext3" --logs "$T/logs3" --timeout 2 \
  --max-envs 1 \
  --env EXT_REC="$REC" --env RT_REC="$REC"
invoke t1 '{"op":"sleep","s":4}'
invoke t2 '{"op":"crash"}'
invoke t3 '{"op":"echo"}'
expect_eq "timeout: X-Amz-Function-Error" Unhandled "$(hdr t1 X-Amz-Function-Error)"
check "timeout: Sandbox.Timedout" grep -q '"errorType":"Sandbox.Timedout"' "$T/t1.b"
check "timeout: message" grep -q 'Task timed out after 2.00 seconds' "$T/t1.b"
check "crash: Runtime.ExitError" grep -q '"errorType":"Runtime.ExitError"' "$T/t2.b"
check "crash: exit status in the message" grep -q 'exit status 3' "$T/t2.b"
check "after the resets the next invoke works" grep -q '"ok":true' "$T/t3.b"
stop_sim
py_checks resets "$REC" "$T/logs3" "$T/t1.b" "$T/t2.b" "$T/t3.b"

# ---- 4. init error, init timeout --------------------------------------------------------------
start_sim sim4 --function "$D/runtime.sh" --env RT_INIT_ERROR=1
invoke i1 '{}'
expect_eq "init error: X-Amz-Function-Error" Unhandled "$(hdr i1 X-Amz-Function-Error)"
check "init error: the runtime's init/error document reaches the caller" grep -q '"errorType":"Runtime.Broken"' "$T/i1.b"
stop_sim
mkdir -p "$T/ext4"
cp "$D/ext.py" "$T/ext4/slow"
start_sim sim5 --function "$D/runtime.sh" --extensions "$T/ext4" --init-timeout 1 \
  --env EXT_INIT_SLEEP_MS=3000 --env EXT_SUBSCRIBE=0
t0=$(date +%s%N)
invoke i2 '{}'
ms=$((($(date +%s%N) - t0) / 1000000))
check "init timeout: Sandbox.Timedout" grep -q 'Sandbox.Timedout' "$T/i2.b"
check "init timeout: answered after the init limit ($ms ms)" test "$ms" -ge 900 -a "$ms" -lt 2900
stop_sim

# ---- 4b. extension init/error and exit/error end the environment --------------------------------
# eps reports its init error once the runtime is up, and the runtime, on the SIGTERM that ends the
# environment, waits until eps has recorded its next call: lambda-sim kills eps (no SHUTDOWN for
# it) only once the runtime is gone, so eps always gets to record the 202 and the 403.
# --shutdown-timeout 10000: the runtime may take 30 % of it.
mkdir -p "$T/ext4b"
cp "$D/ext.py" "$T/ext4b/eps"
REC=$T/rec4b.log
: >"$REC"
start_sim sim4b --function "$D/runtime.sh" --extensions "$T/ext4b" --env EXT_REC="$REC" \
  --env RT_REC="$REC" --env EXT_SUBSCRIBE=0 --env EXT_INIT_ERROR=1 --env 'EXT_AFTER=runtime env' \
  --env 'RT_TERM_AFTER=eps probe' --shutdown-timeout 10000
invoke e1 '{}'
stop_sim
expect_eq "extension init/error: X-Amz-Function-Error" Unhandled "$(hdr e1 X-Amz-Function-Error)"
check "extension init/error: Extension.InitError reaches the caller" grep -q '"errorType":"Extension.InitError"' "$T/e1.b"
check "extension init/error: 202 {\"status\":\"OK\"}" grep -q 'eps init-error 202 {"status":"OK"}' "$REC"
check "extension init/error: later calls are refused (403 InvalidExtensionState)" grep -q 'eps probe next-after-init-error 403 Extension.InvalidExtensionState' "$REC"
check "extension init/error: no invoke reached the runtime" bash -c "! grep -q ' runtime got ' '$REC'"
: >"$REC"
# The same for the exit error: the runtime outlives eps's record of the 202.
start_sim sim4c --function "$D/runtime.sh" --extensions "$T/ext4b" --env EXT_REC="$REC" \
  --env RT_REC="$REC" --env EXT_SUBSCRIBE=0 --env EXT_EXIT_ERROR=1 --max-envs 1 \
  --env 'RT_TERM_AFTER=eps exit-error' --shutdown-timeout 10000
invoke e2 '{}'
invoke e3 '{}'
check "extension exit/error: 202" grep -q 'eps exit-error 202 {"status":"OK"}' "$REC"
expect_eq "extension exit/error: the environment is replaced (a second init)" 2 \
  "$(grep -c ' runtime env ' "$REC")"
check "extension exit/error: no SHUTDOWN to the extension that reported it" bash -c "! grep -q ' eps event SHUTDOWN' '$REC'"
stop_sim

# ---- 5. SHUTDOWN budget: an extension that ignores SHUTDOWN is killed at the deadline ----------
mkdir -p "$T/ext5"
cp "$D/ext.py" "$T/ext5/stubborn"
REC=$T/rec5.log
: >"$REC"
# --timeout 30: a function timeout would end the environment with SHUTDOWN timeout, not the
# spindown this scenario is about (a loaded machine can make the bash runtime that slow).
start_sim sim6 --function "$D/runtime.sh" --extensions "$T/ext5" --telemetry off --timeout 30 \
  --env EXT_REC="$REC" --env RT_REC="$REC" --env EXT_SHUTDOWN_IGNORE=1
invoke s1 '{}'
stop_sim
check "stubborn extension: lambda-sim waited for the budget ($STOP_MS ms)" test "$STOP_MS" -ge 1900
check "stubborn extension: SIGKILL right after the budget ($STOP_MS ms)" test "$STOP_MS" -lt 3500
py_checks stubborn "$REC"

# LAMBDA_SIM_KEEP=DIR keeps the scratch files (records, logs) for a look after a failure.
[ -n "${LAMBDA_SIM_KEEP:-}" ] && cp -r "$T" "$LAMBDA_SIM_KEEP"
finish
