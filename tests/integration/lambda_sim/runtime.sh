#!/bin/bash
# A minimal custom runtime for lambda-sim's tests (bash + curl, not stash).
# The payload chooses what an invoke does: {"op":"echo"} (default), {"op":"sleep","s":N},
# {"op":"crash"}, {"op":"error"}, {"op":"big"}, {"op":"bogus"} (malformed Runtime API calls),
# {"op":"hold","f":"/path"} (answers once that file exists: the caller decides when).
# Appends "<epoch ns> runtime <fact> ..." lines to $RT_REC.  RT_TERM_AFTER="<who> <fact>": on
# SIGTERM, exit only once $RT_REC holds such a line (lambda-sim kills the rest of an environment
# when its runtime is gone, or after 30 % of the SHUTDOWN budget).
# Only the "got" record is made with helper processes (grep, date...): its time is compared with
# the extension's INVOKE record ("INVOKE reached the extension before the runtime's next
# returned"), which the two processes make independently.  The rest uses bash builtins: on a
# loaded machine every fork costs, and the bogus invoke makes many calls within --timeout.
API=$AWS_LAMBDA_RUNTIME_API
REC=${RT_REC:-/dev/null}
rec() { echo "${EPOCHREALTIME/./}000 runtime $*" >>"$REC"; }
# etype TEXT: the errorType in an error document, or nothing (a subshell, but no exec).
etype() { [[ $1 =~ \"errorType\":\"([^\"]*)\" ]] && printf '%s' "${BASH_REMATCH[1]}"; }
h=
b=
on_term() {
  local end=$((${EPOCHREALTIME/./} + 30000000))
  rec sigterm
  if [ -n "${RT_TERM_AFTER:-}" ]; then
    until grep -q " $RT_TERM_AFTER " "$REC" || [ "${EPOCHREALTIME/./}" -ge "$end" ]; do
      sleep 0.02
    done
  fi
  [ -z "$h" ] || rm -f "$h" "$b"
  exit 0
}
# Set first: SIGTERM may come while this script starts (an extension's init error).
trap on_term TERM
rec env "$AWS_SESSION_TOKEN" "$API" "$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" "$AWS_LAMBDA_LOG_STREAM_NAME" "$LAMBDA_TASK_ROOT" "$_HANDLER" "$AWS_LAMBDA_FUNCTION_NAME" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" "$AWS_REGION" "$AWS_LAMBDA_INITIALIZATION_TYPE" "${EXTRA_VAR:-}"
[ -n "${RT_INIT_ERROR:-}" ] && {
  curl -sS -X POST "http://$API/2018-06-01/runtime/init/error" -H "Lambda-Runtime-Function-Error-Type: Runtime.Broken" \
    -d '{"errorMessage":"cannot init","errorType":"Runtime.Broken"}' >/dev/null
  exit 1
}
echo "runtime up"
h=$(mktemp)
b=$(mktemp)
while true; do
  # In the background so that SIGTERM's trap runs while the long poll waits.
  curl -sS -D "$h" -o "$b" "http://$API/2018-06-01/runtime/invocation/next" &
  wait $!
  body=$(cat "$b")
  id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  dl=$(grep -i '^Lambda-Runtime-Deadline-Ms:' "$h" | cut -d' ' -f2 | tr -d '\r')
  tr=$(grep -i '^Lambda-Runtime-Trace-Id:' "$h" | cut -d' ' -f2 | tr -d '\r')
  echo "$(date +%s%N) runtime got $id $dl $tr" >>"$REC"
  echo "function handling $id"
  op=
  [[ $body =~ \"op\":\"([a-z]*)\" ]] && op=${BASH_REMATCH[1]}
  case "$op" in
    sleep)
      s=
      [[ $body =~ \"s\":([0-9.]*) ]] && s=${BASH_REMATCH[1]}
      sleep "$s" & wait $! ;;
    hold)
      f=
      [[ $body =~ \"f\":\"([^\"]*)\" ]] && f=${BASH_REMATCH[1]}
      while [ ! -e "$f" ]; do sleep 0.02 & wait $!; done ;;
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
        rec probe "$name" "${out##* }" "$(etype "$out")"
      done
      out=$(curl -sS -w ' %{http_code}' -X POST -H 'Lambda-Runtime-Function-Response-Mode: weird' -d '{}' "http://$API/2018-06-01/runtime/invocation/$id/response")
      rec probe badmode "${out##* }" "$(etype "$out")" ;;
  esac
  out=$(curl -sS -w ' %{http_code}' -X POST "http://$API/2018-06-01/runtime/invocation/$id/response" \
    -d "{\"ok\":true,\"id\":\"$id\",\"token\":\"$AWS_SESSION_TOKEN\"}")
  rec responded "$id" "${out##* }"
  if [ "$op" = bogus ]; then
    out=$(curl -sS -w ' %{http_code}' -X POST -d '{}' "http://$API/2018-06-01/runtime/invocation/$id/response")
    rec probe twice "${out##* }" "$(etype "$out")"
  fi
done
