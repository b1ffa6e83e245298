#!/usr/bin/env bash
# The sample functions (sim/functions/) work: the Runtime API shim speaks the protocol (responses,
# function errors, init errors); each function reads its values through stash, and its -direct
# twin reads them with the AWS SDK from fake-aws; and they run as lambda-sim's runtime.
# A binary that is missing or a stash that does not serve is a failure: nothing here is skipped.
source "$(dirname "$0")/lib.bash"
FN=$STASH_ROOT/sim/functions
MINI=$STASH_ROOT/tests/integration/mini_runtime_api.mjs

# run_fn EVENTS_JSON HANDLER_FILE: runs the handler under the mini Runtime API; prints its RESULT.
run_fn() {
  node "$MINI" "$1" 20000 -- node "$FN/runtime.mjs" "$2" >"$T/run.out" 2>"$T/run.err"
  grep -a '^RESULT ' "$T/run.out" | tail -1 | cut -c8-
}

# jq-less JSON reads: js EXPR JSON (EXPR sees the parsed value as r).
js() {
  node -e 'const r = JSON.parse(process.argv[2]); const v = eval(process.argv[1]);
           console.log(typeof v === "object" ? JSON.stringify(v) : String(v))' "$1" "$2"
}

# --- The shim, with handlers written here -----------------------------------------------------
cat >"$T/echo.mjs" <<'EOF'
let n = 0;
export const handler = async (event, ctx) => {
    n++;
    if (event.fail) {
        throw new RangeError('asked to fail');
    }
    return { n, got: event, id: ctx.awsRequestId, left: ctx.getRemainingTimeInMillis() > 0 };
};
EOF
cat >"$T/badinit.mjs" <<'EOF'
await Promise.resolve();
throw new TypeError('no config');
EOF
cat >"$T/noexport.mjs" <<'EOF'
export const notTheHandler = 1;
EOF

r=$(run_fn '[{"a":1},{"fail":true},{"b":2}]' "$T/echo.mjs")
expect_eq "shim: three invokes, three answers" 3 "$(js 'r.invocations.length' "$r")"
expect_eq "shim: the response is the handler's result" '{"a":1}' "$(js 'r.invocations[0].body.got' "$r")"
expect_eq "shim: the context carries the request id" true \
  "$(js 'r.invocations[0].body.id === r.invocations[0].id && r.invocations[0].body.left' "$r")"
expect_eq "shim: a throw is posted as a function error" "error Function.RangeError RangeError" \
  "$(js '[r.invocations[1].outcome, r.invocations[1].error_type, r.invocations[1].body.errorType].join(" ")' "$r")"
expect_eq "shim: the environment lives on after a function error" 3 \
  "$(js 'r.invocations[2].body.n' "$r")"
expect_eq "shim: no protocol violation" 0 "$(js 'r.violations.length' "$r")"

r=$(run_fn '[{}]' "$T/badinit.mjs")
expect_eq "shim: an init throw is posted to init/error, then exit 1" "Runtime.TypeError no config 1" \
  "$(js '[r.init_error.type, r.init_error.body.errorMessage, r.exit].join(" ")' "$r")"
expect_eq "shim: no invoke after a failed init" 0 "$(js 'r.invocations.length' "$r")"
r=$(run_fn '[{}]' "$T/noexport.mjs")
expect_eq "shim: a missing handler export is an init error" Runtime.HandlerNotFound \
  "$(js 'r.init_error.type' "$r")"

# --- The functions against fake-aws: -direct twins with the SDK, the others through stash ------
FAKE=$BUILD/bin/fake-aws
STASH=$BUILD/extensions/stash
SIM=$BUILD/bin/lambda-sim

listening() {  # LOGNAME: the port from "listening on 127.0.0.1:<port>" in $T/LOGNAME.log
  local i p
  for ((i = 0; i < 500; i++)); do
    p=$(grep -aom1 'listening on 127\.0\.0\.1:[0-9]*' "$T/$1.log" 2>/dev/null | grep -o '[0-9]*$')
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.01
  done
  return 1
}

calls() {  # upstream calls fake-aws has counted: "<GetSecretValue> <GetParameter>"
  curl -sf "$FAKE_URL/_fake/stats" | python3 "$STASH_ROOT/bench/fake_calls.py" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["GetSecretValue"], d["GetParameter"])'
}

# delta BEFORE AFTER: "<sm> <ssm>" calls between two calls() readings
delta() {
  local -a b=($1) a=($2)
  echo "$((a[0] - b[0])) $((a[1] - b[1]))"
}

if [ ! -x "$FAKE" ]; then
  expect_eq "fake-aws is built ($FAKE)" yes no
  finish
fi
python3 "$STASH_ROOT/bench/gen_data.py" --secrets 2 --bytes 100 >"$T/data.json"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDFUNCTIONSTEST
export AWS_SECRET_ACCESS_KEY=functionsTestSecretKey00000000000000000000
bg fake "$FAKE" --port 0 --data "$T/data.json" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY"
FAKE_URL=http://127.0.0.1:$(listening fake)
export AWS_SESSION_TOKEN=functions-test-token
export AWS_ENDPOINT_URL_SECRETS_MANAGER=$FAKE_URL AWS_ENDPOINT_URL_SSM=$FAKE_URL
export SECRET_ID=bench/secret-0 PARAM_NAME=/bench/param-0

b=$(calls)
r=$(run_fn '[{},{"work_ms":5}]' "$FN/load-test-direct.mjs")
expect_eq "load-test-direct: reads a 100-byte secret and a 64-byte parameter, every invoke" \
  "100 64 100 64 5" \
  "$(js '[r.invocations[0].body.secretBytes, r.invocations[0].body.parameterBytes, r.invocations[1].body.secretBytes, r.invocations[1].body.parameterBytes, r.invocations[1].body.workMs].join(" ")' "$r")"
expect_eq "load-test-direct: no cache, so every invoke calls both services" "2 2" "$(delta "$b" "$(calls)")"

r=$(run_fn '[{},{}]' "$FN/fetch-timing-direct.mjs")
expect_eq "fetch-timing-direct: a cold then a warm fetch, timed" "cold warm true" \
  "$(js '[r.invocations[0].body.phase, r.invocations[1].body.phase, r.invocations[1].body.ms > 0].join(" ")' "$r")"
check "fetch-timing-direct: the fetch time is logged" grep -q 'fetch-timing direct: warm fetch of bench/secret-0 took' "$T/run.out"

b=$(calls)
r=$(run_fn '[{},{}]' "$FN/init-three-secrets-direct.mjs")
expect_eq "init-three-secrets-direct: three 32-byte secrets read in init" "3 96" \
  "$(js '[r.invocations[1].body.secrets, r.invocations[1].body.bytes].join(" ")' "$r")"
expect_eq "init-three-secrets-direct: three calls in init, none per invoke" "3 0" "$(delta "$b" "$(calls)")"
r=$(SECRET_IDS=demo/api-key,no/such,demo/db-password run_fn '[{}]' "$FN/init-three-secrets-direct.mjs")
expect_eq "init-three-secrets-direct: a missing secret fails the init" "ResourceNotFoundException 0" \
  "$(js '[r.init_error.body.errorType, r.invocations.length].join(" ")' "$r")"

# Through stash, run as a plain local agent (what it does outside Lambda).
STASH_PORT=$(free_port)
bg stash env -u AWS_LAMBDA_RUNTIME_API PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$STASH_PORT" "$STASH"
if ! wait_port "$STASH_PORT" 5 ||
   [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
        "http://127.0.0.1:$STASH_PORT/secretsmanager/get?secretId=demo%2Fapi-key")" != 200 ]; then
  sed 's/^/#   /' "$T/stash.log" | tail -20
  expect_eq "stash serves a secret from fake-aws" yes no
  finish
fi
export PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=$STASH_PORT

b=$(calls)
r=$(run_fn '[{},{},{"work_ms":3}]' "$FN/load-test.mjs")
expect_eq "load-test: reads the secret and the parameter through stash, every invoke" \
  "100 64 100 64 3" \
  "$(js '[r.invocations[0].body.secretBytes, r.invocations[0].body.parameterBytes, r.invocations[2].body.secretBytes, r.invocations[2].body.parameterBytes, r.invocations[2].body.workMs].join(" ")' "$r")"
expect_eq "load-test: three invokes, one upstream call per key (stash caches)" "1 1" "$(delta "$b" "$(calls)")"
r=$(run_fn '[{"work_ms":-1}]' "$FN/load-test.mjs")
expect_eq "load-test: a bad work_ms is a function error, not a crash" "error Function.RangeError" \
  "$(js '[r.invocations[0].outcome, r.invocations[0].error_type].join(" ")' "$r")"
r=$(AWS_SESSION_TOKEN=wrong run_fn '[{}]' "$FN/load-test.mjs")
expect_eq "load-test: a wrong token is refused by stash and surfaces as a function error" \
  "Function.ExtensionError" "$(js 'r.invocations[0].error_type' "$r")"

r=$(run_fn '[{},{}]' "$FN/fetch-timing.mjs")
expect_eq "fetch-timing: a cold then a warm fetch through stash" "cold warm 100" \
  "$(js '[r.invocations[0].body.phase, r.invocations[1].body.phase, r.invocations[1].body.secretBytes].join(" ")' "$r")"
check "fetch-timing: the fetch time is logged" grep -q 'fetch-timing extension: cold fetch of bench/secret-0 took' "$T/run.out"

r=$(run_fn '[{}]' "$FN/init-three-secrets.mjs")
expect_eq "init-three-secrets: three secrets read through stash during init" "3 96" \
  "$(js '[r.invocations[0].body.secrets, r.invocations[0].body.bytes].join(" ")' "$r")"

# Under lambda-sim, with stash as the extension: the functions as Lambda would run them.
if [ ! -x "$SIM" ]; then
  expect_eq "lambda-sim is built ($SIM)" yes no
  finish
fi
mkdir -p "$T/ext" "$T/logs"
cp "$STASH" "$T/ext/stash"
bg sim "$SIM" --extensions "$T/ext" --function "node $FN/runtime.mjs $FN/init-three-secrets.mjs" \
  --env "AWS_REGION=$AWS_REGION" --env "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
  --env "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" \
  --env "AWS_ENDPOINT_URL_SECRETS_MANAGER=$FAKE_URL" --env "AWS_ENDPOINT_URL_SSM=$FAKE_URL" \
  --max-envs 1 --logs "$T/logs" --port 0
SIM_PORT=$(listening sim)
r=$(curl -sf --max-time 20 -X POST -d '{}' "http://127.0.0.1:$SIM_PORT/2015-03-31/functions/function/invocations")
expect_eq "lambda-sim: init-three-secrets reads its secrets through stash during INIT" "3 96" \
  "$(js '[r.secrets, r.bytes].join(" ")' "$r")"
check "lambda-sim: the function's init log line is in the log stream" \
  grep -rq 'init-three-secrets extension: read 3 secrets during init' "$T/logs"

finish
