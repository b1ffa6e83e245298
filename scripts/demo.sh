#!/usr/bin/env bash
# make demo: what stash does for a function, on this machine, in about half a minute.
#
# Starts fake-aws (Secrets Manager and SSM on loopback, SigV4 checked, with a modelled network
# round trip), then lambda-sim running the load-test sample function (one parameter and one secret
# per invoke) twice over the same burst of invocations: once calling AWS directly with the AWS SDK
# for JavaScript (what functions do without a cache), once through stash as a Lambda extension.
# Prints what stash did, read back from the EMF lines it wrote to its log streams, and what
# fake-aws counted, and ends by writing the HTML report to BUILD/demo/report.html.  Without
# lambda-sim (an older checkout) it runs stash standalone instead.
#   scripts/demo.sh [BUILD]      DEMO_INVOKES (default 60)  DEMO_CONCURRENCY (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
INVOKES=${DEMO_INVOKES:-60}
CONC=${DEMO_CONCURRENCY:-3}
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
SECRET_ID=prod/db
PARAM=/app/prod/db/host

wait_file() {  # path, seconds
  local i
  for ((i = 0; i < $2 * 50; i++)); do
    [ -s "$1" ] && return 0
    sleep 0.02
  done
  echo "demo: $1 did not appear after $2 s" >&2
  return 1
}

# 15 ms +-5 per call and 40 ms more on a new connection: the order of a regional AWS endpoint
# seen from Lambda (a TLS handshake on a new connection).
"$BUILD/bin/fake-aws" --port 0 --data sim/fake_aws/sample-data.json --ready-file "$T/fa.port" \
  --latency-ms 15 --jitter-ms 5 --cold-ms 40 >"$T/fake-aws.log" 2>&1 &
pids+=($!)
wait_file "$T/fa.port" 10
FA=$(cat "$T/fa.port")
ENDPOINT=http://127.0.0.1:$FA

upstream_calls() {
  curl -s "$ENDPOINT/_fake/stats" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const j = JSON.parse(s); let n = 0;
      const walk = (o) => { for (const [k, v] of Object.entries(o)) {
        if (k === "calls" && typeof v === "number") n += v; else if (v && typeof v === "object") walk(v); } };
      walk(j.ops); console.log(n); });'
}

burst() {  # port, label: answers go to $T/answers-LABEL/N.json
  mkdir -p "$T/answers-$2"
  seq "$INVOKES" | xargs -P "$CONC" -I{} curl -s -o "$T/answers-$2/{}.json" -w '%{http_code}\n' \
    -X POST -d '{}' "http://127.0.0.1:$1/2015-03-31/functions/function/invocations" | sort |
    uniq -c | awk '{printf "  %d invocations answered %s\n", $1, $2}'
  # fetchMs is what the function itself measured for its parameter + secret reads.
  cat "$T/answers-$2"/*.json | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const ms = s.split(/(?<=})\s*(?={)/).map((x) => { try { return JSON.parse(x).fetchMs; }
        catch { return undefined; } }).filter((x) => typeof x === "number").sort((a, b) => a - b);
      if (!ms.length) return;
      const q = (p) => ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)].toFixed(2);
      console.log(`  fetch time seen by the function (parameter + secret): p50 ${q(0.5)} ms, p99 ${q(0.99)} ms`);
    });'
}

run_sim() {  # label, function file, extensions dir or "", logs dir
  local label=$1 fn=$2 ext=$3 logs=$4 args=()
  [ -n "$ext" ] && args+=(--extensions "$ext")
  rm -f "$T/sim.port"
  "$BUILD/bin/lambda-sim" --port 0 --ready-file "$T/sim.port" --function-name demo-fn \
    --function "node sim/functions/runtime.mjs $fn" "${args[@]}" --logs "$logs" \
    --memory 512 --timeout 10 --max-envs "$((CONC * 2))" \
    --env AWS_ACCESS_KEY_ID=$AKID --env AWS_SECRET_ACCESS_KEY=$SECRET \
    --env AWS_ENDPOINT_URL_SECRETS_MANAGER="$ENDPOINT" --env AWS_ENDPOINT_URL_SSM="$ENDPOINT" \
    --env SECRET_ID=$SECRET_ID --env PARAM_NAME=$PARAM \
    --env SECRETS_MANAGER_TTL=300 --env SSM_PARAMETER_STORE_TTL=300 \
    >"$T/sim-$label.out" 2>&1 &
  local sim=$!
  pids+=($sim)
  wait_file "$T/sim.port" 10
  burst "$(cat "$T/sim.port")" "$label"
  kill -TERM "$sim"   # SHUTDOWN spindown: stash flushes its last records
  wait "$sim" 2>/dev/null || true
}

if [ -x "$BUILD/bin/lambda-sim" ]; then
  echo "== $INVOKES invocations of load-test (1 parameter + 1 secret each), $CONC at a time"
  echo
  echo "-- without a cache: the AWS SDK for JavaScript straight to (fake) AWS"
  curl -s -X POST "$ENDPOINT/_fake/reset" >/dev/null
  mkdir -p "$T/logs-direct"
  run_sim direct sim/functions/load-test-direct.mjs "" "$T/logs-direct"
  echo "  upstream API calls: $(upstream_calls)"
  echo
  echo "-- with stash as a Lambda extension (TTL 300 s)"
  curl -s -X POST "$ENDPOINT/_fake/reset" >/dev/null
  mkdir -p "$T/ext" "$T/logs-stash"
  ln -s "$PWD/$BUILD/extensions/stash" "$T/ext/stash"
  run_sim stash sim/functions/load-test.mjs "$T/ext" "$T/logs-stash"
  echo "  upstream API calls counted by fake-aws: $(upstream_calls)"
  echo
  echo "-- what stash did, from its EMF lines"
  mkdir -p "$BUILD/demo"
  rm -f "$BUILD/demo/report.html"
  cat "$T"/logs-stash/* | node dashboards/stash-report.mjs --memory-mb 512 --invocations-per-month 10000000 \
    --html "$BUILD/demo/report.html"
else
  echo "== lambda-sim is not built: stash standalone against fake-aws"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  AWS_SESSION_TOKEN=demo-token AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID \
    AWS_SECRET_ACCESS_KEY=$SECRET AWS_ENDPOINT_URL="$ENDPOINT" \
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=$PORT "$BUILD/extensions/stash" >"$T/stash.out" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 250; i++)); do curl -s "http://127.0.0.1:$PORT/ping" >/dev/null && break; sleep 0.02; done
  curl -s -X POST "$ENDPOINT/_fake/reset" >/dev/null
  for ((i = 0; i < INVOKES; i++)); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "X-Aws-Parameters-Secrets-Token: demo-token" \
      "http://127.0.0.1:$PORT/secretsmanager/get?secretId=$SECRET_ID"
  done | awk '{t[NR]=$1*1000} END {printf "  first fetch %.2f ms, last fetch %.2f ms\n", t[1], t[NR]}'
  echo "  $INVOKES requests, upstream API calls: $(upstream_calls)"
  kill -TERM "${pids[-1]}"   # stash flushes its records on SIGTERM
  wait "${pids[-1]}" 2>/dev/null || true
  echo
  echo "-- what stash did, from its EMF lines"
  mkdir -p "$BUILD/demo"
  rm -f "$BUILD/demo/report.html"
  node dashboards/stash-report.mjs --html "$BUILD/demo/report.html" "$T/stash.out" ||
    echo "  (standalone stash wrote no EMF line: no report)"
fi
if [ -f "$BUILD/demo/report.html" ]; then
  echo
  echo "HTML report (charts, per function, every assumption): $(cd "$BUILD/demo" && pwd)/report.html"
fi
