#!/usr/bin/env bash
# A value's plain 200 answer is one libmicrohttpd response shared by every request answered with
# it (extension/api.c, shared_response).  Here, against fake-aws: hits are byte-identical to the
# first answer, with the same headers (HTTP/1.1 and 1.0, keep-alive, 32 at once); shaped answers
# keep their own; and a client still receiving a large answer when its entry is replaced
# (refreshNow) or evicted gets the old body intact while new readers get the new one, and nothing
# is freed early.  Run against the ASan build (BUILD=build/asan, as `make asan` does) the last
# part also proves no read of freed memory; either way the value is wiped when freed, so an early
# free would show as a changed body.
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash
FAKE=$BUILD/bin/fake-aws
if [ ! -x "$FAKE" ] || [ ! -x "$STASH" ]; then
  echo "not ok - stash or fake-aws is missing ($STASH, $FAKE)"
  echo "0 passed, 1 failed"
  exit 1
fi

AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
TOKEN=shared-session-token-$$

# Two large secrets: 60000 control characters, which the answer's JSON escapes to six bytes each
# (about 360 KB), far more than the kernel's socket buffers hold for a reader that stalls.
python3 - "$T/data.json" <<'PY'
import json, sys
secret = lambda name, ch: {"Name": name, "Versions": [{"SecretString": ch * 60000}]}
json.dump({"AccountId": "123456789012",
           "Secrets": [secret("big/a", "\x01"), secret("big/b", "\x02"),
                       {"Name": "small/one", "Versions": [{"SecretString": "{\"k\":\"one\"}"}]},
                       {"Name": "small/two", "Versions": [{"SecretString": "two"}]}]},
          open(sys.argv[1], "w"))
PY
fport=$(free_port)
bg fake "$FAKE" --port "$fport" --data "$T/data.json" --region us-east-1 --access-key "$AKID" \
  --secret-key "$SECRET" --session-token "$TOKEN"
wait_port "$fport" || { cat "$T/fake.log"; finish; }
F=http://127.0.0.1:$fport
port=$(free_port)
# Two entries at most: two more keys evict both big ones.
bg stash env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID \
  AWS_SECRET_ACCESS_KEY="$SECRET" AWS_SESSION_TOKEN="$TOKEN" AWS_ENDPOINT_URL="$F" \
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE=2 \
  "$STASH"
stash_pid=${_pids[-1]}
wait_port "$port" || { cat "$T/stash.log"; finish; }
U=http://127.0.0.1:$port
H="X-Aws-Parameters-Secrets-Token: $TOKEN"
sm() { echo "$U/secretsmanager/get?secretId=$1"; }
get() {  # NAME URL [curl args]: body in $T/NAME.body, head without Date in $T/NAME.head
  local name=$1 url=$2
  shift 2
  curl -s -o "$T/$name.body" -D "$T/$name.raw" -H "$H" "$@" "$url"
  grep -vi '^date:' "$T/$name.raw" >"$T/$name.head"
}

# ---- byte-identical hits, same headers ----
get miss "$(sm small/one)"
get hit1 "$(sm small/one)"
get hit2 "$(sm small/one)"
check "a hit's body is the miss's, byte for byte" cmp "$T/miss.body" "$T/hit1.body"
check "and so is the next hit's" cmp "$T/miss.body" "$T/hit2.body"
check "the hit's headers are the miss's (Date aside)" cmp "$T/miss.head" "$T/hit1.head"
expect_eq "a hit's head: status, Date, Content-Type, Content-Length and nothing else" \
  "HTTP/1.1 200 OK|Content-Type: application/json|Content-Length: $(stat -c %s "$T/miss.body")|" \
  "$(tr -d '\r' <"$T/hit2.head" | paste -sd'|')"
expect_eq "one Date header" 1 "$(grep -ci '^date:' "$T/hit2.raw")"
check "the value is the secret's" grep -q '"SecretString":"{\\"k\\":\\"one\\"}"' "$T/hit1.body"
get h10 "$(sm small/one)" --http1.0
check "HTTP/1.0: same body" cmp "$T/miss.body" "$T/h10.body"
expect_eq "HTTP/1.0: 200, and the connection closes" \
  "HTTP/1.1 200 OK|Connection: close|Content-Type: application/json|Content-Length: $(stat -c %s "$T/miss.body")|" \
  "$(tr -d '\r' <"$T/h10.head" | paste -sd'|')"
# One keep-alive connection, three answers from the one response.
curl -s -H "$H" "$(sm small/one)" "$(sm small/one)" "$(sm small/one)" -o "$T/ka.1" -o "$T/ka.2" \
  -o "$T/ka.3" -w '%{num_connects}\n' >"$T/ka.conns"
check "three hits on one keep-alive connection: each body intact" \
  bash -c "cmp '$T/miss.body' '$T/ka.1' && cmp '$T/miss.body' '$T/ka.2' && cmp '$T/miss.body' '$T/ka.3'"
expect_eq "over one connection" "1|0|0" "$(paste -sd'|' "$T/ka.conns")"
# 32 at once, each on its own connection.
for i in $(seq 32); do
  curl -s -H "$H" -o "$T/par.$i" "$(sm small/one)" &
done
wait_all=0
for job in $(jobs -p); do
  case " ${_pids[*]} " in *" $job "*) ;; *) wait "$job" || wait_all=1 ;; esac
done
bad=0
for i in $(seq 32); do cmp -s "$T/miss.body" "$T/par.$i" || bad=$((bad + 1)); done
expect_eq "32 concurrent hits: every body intact" "0|0" "$wait_all|$bad"
# Shaped answers keep their own response: jsonKey's is the key's value, with its own type.
get key "$(sm small/one)&jsonKey=k"
expect_eq "jsonKey on the same entry: its own body" "one" "$(cat "$T/key.body")"
get hit3 "$(sm small/one)"
check "and the plain answer is unchanged after it" cmp "$T/miss.body" "$T/hit3.body"

# ---- a slow reader keeps its answer while the entry is replaced or evicted ----
get olda "$(sm big/a)"
get oldb "$(sm big/b)"
check "big/a's answer is large (over 300000 bytes)" test "$(stat -c %s "$T/olda.body")" -gt 300000
for r in a b; do
  mkdir "$T/slow$r"
  bg "slow$r" python3 "$STASH_ROOT/tests/integration/slow_reader.py" "$port" \
    "/secretsmanager/get?secretId=big/$r" "$TOKEN" "$T/slow$r"
done
for r in a b; do
  for _ in $(seq 400); do [ -f "$T/slow$r/stalled" ] && break; sleep 0.05; done
  read -r total got rx tx <"$T/slow$r/stalled" || { cat "$T/slow$r.log"; total=0 got=0 rx=0 tx=0; }
  expect_eq "slow reader $r: the answer is big/$r's length" "$(stat -c %s "$T/old$r.body")" "$total"
  check "slow reader $r: stash still holds part of the answer (its request is not over)" \
    test "$total" -gt $((got + rx + tx))
  echo "#   slow reader $r: length $total, read $got, client receive queue $rx, server send queue $tx"
done
# Replaced: refreshNow after a rotation gives the new value to new readers.
expect_eq "rotate big/a" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$F/_fake/rotate?secretId=big/a&value=rotated-a")"
get newa "$(sm big/a)&refreshNow=true"
check "refreshNow answers the new value" grep -q '"SecretString":"rotated-a"' "$T/newa.body"
get newa2 "$(sm big/a)"
check "a new reader after it gets the new value, byte for byte" cmp "$T/newa.body" "$T/newa2.body"
# Evicted: two other keys push both big entries out of the two-entry store.
get s1 "$(sm small/one)"
get s2 "$(sm small/two)"
expect_eq "rotate big/b" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$F/_fake/rotate?secretId=big/b&value=rotated-b")"
get newb "$(sm big/b)"
check "big/b was evicted: a new reader gets the rotated value" \
  grep -q '"SecretString":"rotated-b"' "$T/newb.body"
# Now the slow readers read the rest.
touch "$T/slowa/go" "$T/slowb/go"
for r in a b; do
  for _ in $(seq 1200); do [ -f "$T/slow$r/done" ] && break; sleep 0.05; done
  check "slow reader $r: the old body, intact, byte for byte" cmp "$T/old$r.body" "$T/slow$r/body"
done
get last "$(sm big/a)"
check "stash still answers: big/a is the new value" cmp "$T/newa.body" "$T/last.body"
check "no sanitizer report in stash's log" bash -c "! grep -q 'Sanitizer' '$T/stash.log'"

kill -TERM "$stash_pid"
wait "$stash_pid"
expect_eq "SIGTERM: exit 0 (under ASan: no leak either)" 0 $?
finish
