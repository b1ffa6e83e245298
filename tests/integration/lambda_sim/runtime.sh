#!/bin/bash
# A minimal custom runtime for lambda-sim's tests (bash + curl, not stash).
# The payload chooses what an invoke does: {"op":"echo"} (default), {"op":"sleep","s":N},
# {"op":"crash"}, {"op":"error"}, {"op":"big"}, {"op":"bogus"} (malformed Runtime API calls).
# Appends "<epoch ns> runtime <fact> ..." lines to $RT_REC.
API=$AWS_LAMBDA_RUNTIME_API
REC=${RT_REC:-/dev/null}
rec() { echo "$(date +%s%N) runtime $*" >>"$REC"; }
rec env "$AWS_SESSION_TOKEN" "$API" "$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" "$AWS_LAMBDA_LOG_STREAM_NAME" "$LAMBDA_TASK_ROOT" "$_HANDLER" "$AWS_LAMBDA_FUNCTION_NAME" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" "$AWS_REGION" "$AWS_LAMBDA_INITIALIZATION_TYPE" "${EXTRA_VAR:-}"
[ -n "${RT_INIT_ERROR:-}" ] && {
  curl -sS -X POST "http://$API/2018-06-01/runtime/init/error" -H "Lambda-Runtime-Function-Error-Type: Runtime.Broken" \
    -d '{"errorMessage":"cannot init","errorType":"Runtime.Broken"}' >/dev/null
  exit 1
}
echo "runtime up"
h=$(mktemp)
b=$(mktemp)
trap 'rec sigterm; rm -f "$h" "$b"; exit 0' TERM
while true; do
  # In the background so that SIGTERM's trap runs while the long poll waits.
  curl -sS -D "$h" -o "$b" "http://$API/2018-06-01/runtime/invocation/next" &
  wait $!
  body=$(cat "$b")
  id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  dl=$(grep -i '^Lambda-Runtime-Deadline-Ms:' "$h" | cut -d' ' -f2 | tr -d '\r')
  tr=$(grep -i '^Lambda-Runtime-Trace-Id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  rec got "$id" "$dl" "$tr"
  echo "function handling $id"
  op=$(echo "$body" | sed -n 's/.*"op":"\([a-z]*\)".*/\1/p')
  case "$op" in
    sleep)
      s=$(echo "$body" | sed -n 's/.*"s":\([0-9.]*\).*/\1/p')
      sleep "$s" & wait $! ;;
    crash) rec crash "$id"; exit 3 ;;
    error)
      curl -sS -X POST "http://$API/2018-06-01/runtime/invocation/$id/error" \
        -H 'Lambda-Runtime-Function-Error-Type: Function.Boom' \
        -d '{"errorMessage":"boom","errorType":"Boom","stackTrace":[]}' >/dev/null
      rec posted-error "$id"
      continue ;;
    bogus)
      for p in "next:GET:/2018-06-01/runtime/invocation/next" \
               "wrongid:POST:/2018-06-01/runtime/invocation/00000000-0000-4000-8000-000000000000/response" \
               "badsuffix:POST:/2018-06-01/runtime/invocation/$id/bogus" \
               "nopath:GET:/2018-06-01/nothing" \
               "initerr:POST:/2018-06-01/runtime/init/error" \
               "register:POST:/2020-01-01/extension/register"; do
        name=${p%%:*}; rest=${p#*:}; m=${rest%%:*}; path=${rest#*:}
        out=$(curl -sS -o /dev/stdout -w ' %{http_code}' -X "$m" -H 'Lambda-Extension-Name: late' -d '{}' "http://$API$path")
        rec probe "$name" "${out##* }" "$(echo "$out" | sed -n 's/.*"errorType":"\([^"]*\)".*/\1/p')"
      done
      out=$(curl -sS -w ' %{http_code}' -X POST -H 'Lambda-Runtime-Function-Response-Mode: weird' -d '{}' "http://$API/2018-06-01/runtime/invocation/$id/response")
      rec probe badmode "${out##* }" "$(echo "$out" | sed -n 's/.*"errorType":"\([^"]*\)".*/\1/p')" ;;
  esac
  out=$(curl -sS -w ' %{http_code}' -X POST "http://$API/2018-06-01/runtime/invocation/$id/response" \
    -d "{\"ok\":true,\"id\":\"$id\",\"token\":\"$AWS_SESSION_TOKEN\"}")
  rec responded "$id" "${out##* }"
  if [ "$op" = bogus ]; then
    out=$(curl -sS -w ' %{http_code}' -X POST -d '{}' "http://$API/2018-06-01/runtime/invocation/$id/response")
    rec probe twice "${out##* }" "$(echo "$out" | sed -n 's/.*"errorType":"\([^"]*\)".*/\1/p')"
  fi
done
