#!/usr/bin/env bash
# The sample functions (sim/functions/) work: the Runtime API shim speaks the protocol (responses,
# function errors, init errors); each function reads its values through stash, and its -direct
# twin reads them with the AWS SDK from fake-aws; and they run as lambda-sim's runtime.
# Parts whose binaries are not functional yet say "# skip" and count nothing.
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

finish
