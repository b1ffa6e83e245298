#!/usr/bin/env bash
# The local API and the command line, with no upstream at all (endpoints point at a closed
# port): --help/--version, configuration errors, README in sync, /ping, tokens, every locally
# decided status (400, 401, 404, 405, 413), 502 when upstream is unreachable, SIGTERM exit.
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash

# --version, --help, and the README's configuration table generated from the same table.
check "--version prints the version" bash -c "'$STASH' --version | grep -qE '^stash [0-9]+\.[0-9]+\.[0-9]+$'"
"$STASH" --help >"$T/help" 2>&1
check "--help lists AWS's and stash's variables with defaults and ranges" \
  grep -q 'SECRETS_MANAGER_TTL' "$T/help"
check "--help shows the port's default and range" grep -q 'default: 2773; valid: 1-65535' "$T/help"
"$STASH" --help-markdown >"$T/table.md"
sed -n '/<!-- config-table/,/<!-- \/config-table -->/p' "$STASH_ROOT/README.md" | sed '1d;$d' >"$T/readme.md"
check "README's configuration table is the generated one (stash --help-markdown)" \
  diff -u "$T/table.md" "$T/readme.md"
"$STASH" --bogus >/dev/null 2>&1
expect_eq "unknown option exits 2" 2 $?

closed=$(free_port)   # nothing listens here
port=$(free_port)
base_env=(env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDLOCAL
  AWS_SECRET_ACCESS_KEY=local-secret AWS_SESSION_TOKEN=local-token
  AWS_ENDPOINT_URL="http://127.0.0.1:$closed" PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port"
  STASH_MAX_ATTEMPTS=1)

# Invalid configuration: exit 2, one line naming the variable and the range, no secret.
out=$("${base_env[@]}" SECRETS_MANAGER_TTL=3601 "$STASH" 2>&1)
rc=$?
expect_eq "TTL above 3600 exits 2" 2 "$rc"
check "the error names the variable and the range" grep -q 'SECRETS_MANAGER_TTL=3601.*0-3600' <<<"$out"
check "the error shows no credential" bash -c "! grep -q 'local-secret\|local-token' <<<'$out'"
out=$("${base_env[@]}" PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED=maybe "$STASH" 2>&1)
expect_eq "bad boolean exits 2" 2 $?
out=$(env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b "$STASH" 2>&1)
expect_eq "no token source exits 2" 2 $?
check "and says which variables give one" grep -q 'AWS_SESSION_TOKEN' <<<"$out"

bg stash "${base_env[@]}" PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug \
  PARAMETERS_SECRETS_CACHE_SIZE=5 "$STASH"
stash_pid=${_pids[-1]}
wait_port "$port" || { cat "$T/stash.log"; finish; }

U=http://127.0.0.1:$port
H='X-Aws-Parameters-Secrets-Token: local-token'
req() {  # curl args...; prints "status|content-type|body"
  curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@" >"$T/code"
  printf '%s|%s|%s' "$(cat "$T/code")" \
    "$(grep -i '^content-type:' "$T/headers" | tr -d '\r' | cut -d' ' -f2-)" "$(cat "$T/body")"
}
jtype() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["__type"])' "$T/body"; }

expect_eq "/ping needs no token" "200|text/plain|healthy" "$(req "$U/ping")"
expect_eq "/ping over IPv6 loopback" "200|text/plain|healthy" "$(req -g "http://[::1]:$port/ping")"
expect_eq "missing token: 401, AWS's text" "401|text/plain|bad session token or header key" \
  "$(req "$U/secretsmanager/get?secretId=a")"
check "401 carries x-amzn-errortype: AccessDeniedException" \
  grep -qi '^x-amzn-errortype: AccessDeniedException' "$T/headers"
expect_eq "wrong token: 401" "401" "$(req -H 'X-Aws-Parameters-Secrets-Token: local-tokeN' "$U/secretsmanager/get?secretId=a" | cut -d'|' -f1)"
expect_eq "wrong X-Vault-Token: 401" "401" "$(req -H 'X-Vault-Token: nope' "$U/v1/a" | cut -d'|' -f1)"
expect_eq "token on an unknown path is still checked first" "401" "$(req "$U/nope" | cut -d'|' -f1)"

r=$(req -H "$H" "$U/nope")
expect_eq "unknown path: 404 JSON" "404|application/json" "${r%|*}"
expect_eq "404 type" "UnknownOperationException" "$(jtype)"
r=$(req -X POST -H "$H" "$U/secretsmanager/get?secretId=a")
expect_eq "POST: 405 JSON" "405|application/json" "${r%|*}"
check "405 carries Allow: GET" grep -qi '^Allow: GET' "$T/headers"
r=$(req -X DELETE -H "$H" "$U/ping")
expect_eq "DELETE /ping: 405" "405" "${r%%|*}"
r=$(req -H "$H" "$U/secretsmanager/get")
expect_eq "missing secretId: 400 JSON" "400|application/json" "${r%|*}"
expect_eq "400 type" "ValidationException" "$(jtype)"
r=$(req -H "$H" "$U/secretsmanager/get?secretId=a&versionId=1&versionStage=AWSCURRENT")
expect_eq "versionId and versionStage: 400" "400" "${r%%|*}"
r=$(req -H "$H" "$U/secretsmanager/get?secretId=a&refreshNow=soon")
expect_eq "bad refreshNow: 400" "400" "${r%%|*}"
r=$(req -H "$H" "$U/systemsmanager/parameters/get?withDecryption=true")
expect_eq "missing name: 400" "400" "${r%%|*}"
r=$(req -H "$H" "$U/v1/")
expect_eq "/v1/ without id: 400" "400" "${r%%|*}"
r=$(req -H "$H" -H 'X-Forwarded-For: 203.0.113.7' "$U/secretsmanager/get?secretId=a")
expect_eq "X-Forwarded-For: 400" "400" "${r%%|*}"
long=$(head -c 9000 /dev/zero | tr '\0' a)
r=$(req -H "$H" "$U/secretsmanager/get?secretId=$long")
expect_eq "URL over 8192 bytes: 413 JSON" "413|application/json" "${r%|*}"
expect_eq "413 type" "RequestTooLargeException" "$(jtype)"
r=$(req -H "$H" -H "X-Pad: $(head -c 17000 /dev/zero | tr '\0' b)" "$U/ping")
expect_eq "headers over 16384 bytes: 413" "413" "${r%%|*}"

# Upstream is a closed port: 502 with a JSON body a program can act on.
r=$(req -H "$H" "$U/secretsmanager/get?secretId=a")
expect_eq "unreachable upstream: 502 JSON" "502|application/json" "${r%|*}"
check "502 body is JSON with __type and message" python3 -c '
import json,sys; b=json.load(open(sys.argv[1])); assert b["__type"] and b["message"], b' "$T/body"
r=$(req -H "$H" "$U/systemsmanager/parameters/get?name=%2Fa%2Fb")
expect_eq "unreachable upstream (SSM): 502" "502" "${r%%|*}"

# Logs: the doc-erratum warning, the effective config at debug, and never a secret.
check "warns about PARAMETERS_SECRETS_CACHE_SIZE" grep -q 'PARAMETERS_SECRETS_CACHE_SIZE is not read' "$T/stash.log"
check "debug logs the effective config" grep -q 'SECRETS_MANAGER_TTL=300' "$T/stash.log"
check "no credential or token in the log" bash -c "! grep -q 'local-secret\|local-token' '$T/stash.log'"

# Over STASH_MAX_INBOUND_CONNECTIONS: the extra connection is answered 429
# TooManyRequestsException (Retry-After, then closed), /ping still 200, with one WARN.
lport=$(free_port)
bg limited "${base_env[@]}" PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$lport" \
  STASH_MAX_INBOUND_CONNECTIONS=2 "$STASH"
wait_port "$lport"
check "a third connection over a limit of 2 gets 429, a fourth too; /ping is still served" \
  python3 - "$lport" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
time.sleep(0.2)  # wait_port's own probe connection must be gone
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
time.sleep(0.2)

def get(path):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(2)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Aws-Parameters-Secrets-Token: t\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            return data
        data += d

for _ in range(2):
    r = get(b"/secretsmanager/get?secretId=a")
    assert r.startswith(b"HTTP/1.1 429"), r[:100]
    assert b"TooManyRequestsException" in r and b"Retry-After: 1" in r, r
assert b"healthy" in get(b"/ping"), "ping over the limit"
idle[0].close()
for _ in range(50):  # the server notices the close within a poll round
    time.sleep(0.1)
    if get(b"/secretsmanager/get?secretId=a").startswith(b"HTTP/1.1 401"):
        break
else:
    raise AssertionError("not served once a slot is free")
PY
check "the 429 is logged once as a WARN naming the variable" \
  bash -c "[ \$(grep -c 'WARN api: connection over STASH_MAX_INBOUND_CONNECTIONS' '$T/limited.log') = 1 ]"

# Secrets in memory: stash makes itself non-dumpable (no core file, no ptrace or /proc/PID/mem
# for other processes of its user).  The kernel shows it in who owns /proc/PID's files: root
# instead of the process's user.  Needs root to run stash as another user.
if [ "$(id -u)" = 0 ]; then
  dport=$(free_port)
  as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  bg nobody "${as_nobody[@]}" "${base_env[@]}" PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$dport" "$STASH"
  npid=${_pids[-1]}
  wait_port "$dport"
  bg control "${as_nobody[@]}" sleep 30
  cpid=${_pids[-1]}
  sleep 0.1
  expect_eq "control: a dumpable process of nobody owns its /proc/PID/mem" 65534 \
    "$(stat -c %u "/proc/$cpid/mem")"
  expect_eq "stash run as nobody is not dumpable: /proc/PID/mem owned by root" 0 \
    "$(stat -c %u "/proc/$npid/mem")"
fi

kill -TERM "$stash_pid"
wait "$stash_pid"
expect_eq "SIGTERM: exit 0" 0 $?
finish
