#!/usr/bin/env bash
# Batch prefetch and the batch paths against fake-aws, counted by fake-aws: 25 secrets and 12
# parameters prefetched in exactly 2 BatchGetSecretValue and 2 GetParameters calls, then every
# read a hit; a read arriving while its prefetch is in flight waits for it (no second call); a
# refused BatchGetSecretValue falls back to single calls; /secretsmanager/batch and
# /systemsmanager/parameters/batch with hits, misses and errors in one answer, unicode and binary
# values, each answered from the cache the single paths share.
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash

python3 - "$T/data.json" <<'EOF'
import json, sys
secrets = [{"Name": "s%02d" % i, "Versions": [{"SecretString": "value-%02d" % i}]} for i in range(25)]
secrets[3]["Versions"][0]["SecretString"] = '{"k":"\u00e9t\u00e9 \u2603","n":[1,2]}'
secrets[4]["Versions"] = [{"SecretBinary": "AAEC/w=="}]
secrets.append({"Name": "denied", "AccessDenied": True, "Versions": [{"SecretString": "x"}]})
types = ["String", "SecureString", "StringList"]
params = [{"Name": "/p/%02d" % i, "Type": types[i % 3], "Value": "pv-%02d,\u00fc" % i} for i in range(12)]
params.append({"Name": "/p/v", "Type": "String", "Versions": [
    {"Version": 1, "Value": "one", "Labels": ["old"]}, {"Version": 2, "Value": "two"}]})
json.dump({"AccountId": "123456789012", "Secrets": secrets, "Parameters": params},
          open(sys.argv[1], "w"), ensure_ascii=False)
EOF
start_fake_aws --data "$T/data.json"
F=http://127.0.0.1:$FAP
TOKEN=batch-token-$$
H="X-Aws-Parameters-Secrets-Token: $TOKEN"
SECRETS=$(python3 -c 'print(",".join("s%02d" % i for i in range(25)))')
PARAMS=$(python3 -c 'print(", ".join("/p/%02d" % i for i in range(12)))')

# Starts stash NAME [VAR=value...]; sets $U.
start_stash() {
  local name=$1 port
  shift
  port=$(free_port)
  bg "$name" env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDEXAMPLE \
    AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY AWS_SESSION_TOKEN="$TOKEN" \
    AWS_ENDPOINT_URL="$F" PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" "$@" "$STASH"
  wait_port "$port" || cat "$T/$name.log"
  U=http://127.0.0.1:$port
}
calls() {  # CALLS OP...: fake-aws's call counts of each operation, space-separated
  curl -s "$F/_fake/stats" | python3 -c '
import json, sys
ops = json.load(sys.stdin)["ops"]
print(" ".join(str(ops.get(o, {}).get("calls", 0)) for o in sys.argv[1:]))' "$@"
}
ALL="BatchGetSecretValue GetParameters GetSecretValue GetParameter"
reset() { curl -s -o /dev/null -X POST "$F/_fake/reset"; }
get() {  # URL: body in $T/body, prints the status
  curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' -H "$H" "$1"
}
j() {  # python expression over d = the last body
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/body" "$1"
}
# Waits until fake-aws has counted CALLS for OPS (at most 10 s).
wait_calls() {
  local want=$1 i
  shift
  for ((i = 0; i < 200; i++)); do
    [ "$(calls "$@")" = "$want" ] && return 0
    sleep 0.05
  done
  return 1
}

# ---- prefetch: 25 secrets, 12 parameters ----
reset
start_stash pf STASH_PREFETCH_SECRETS="$SECRETS" STASH_PREFETCH_PARAMETERS="$PARAMS" \
  PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug
check "prefetch made 2 BatchGetSecretValue and 2 GetParameters calls" \
  wait_calls "2 2" BatchGetSecretValue GetParameters
sleep 0.2 # a stray third call would have arrived by now
hits=0
for i in $(seq -w 0 24); do
  [ "$(get "$U/secretsmanager/get?secretId=s$i")" = 200 ] && hits=$((hits + 1))
done
for i in $(seq -w 0 11); do
  [ "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2F$i&withDecryption=true")" = 200 ] &&
    hits=$((hits + 1))
done
expect_eq "37 reads answered 200" 37 "$hits"
expect_eq "every read was a hit: only the 4 prefetch calls" "2 2 0 0" "$(calls $ALL)"
expect_eq "a String prefetched with decryption answers a read without it: 200" 200 \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2F00")"
expect_eq "... from the cache" "0" "$(calls GetParameter)"
expect_eq "a StringList likewise" 200 "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2F02")"
expect_eq "... from the cache" "0" "$(calls GetParameter)"
expect_eq "a SecureString read without decryption: 200" 200 \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2F01")"
expect_eq "... goes upstream (its value differs without decryption)" "1" "$(calls GetParameter)"
check "the log names prefetched ids, never a value" \
  bash -c "grep -q 'prefetched secret s07' '$T/pf.log' && ! grep -q 'value-07\|pv-0' '$T/pf.log'"

# ---- a read while its prefetch is in flight waits for it ----
reset
curl -s -o /dev/null -X POST "$F/_fake/latency?ms=700"
start_stash slow STASH_PREFETCH_SECRETS="s00,s01,s02"
t0=$(date +%s%N)
expect_eq "a read during the prefetch: 200" 200 "$(get "$U/secretsmanager/get?secretId=s01")"
expect_eq "... answered by the prefetch's call (no GetSecretValue)" "1 0" \
  "$(calls BatchGetSecretValue GetSecretValue)"
check "... which it waited for (the call took 700 ms)" \
  test $(( ($(date +%s%N) - t0) / 1000000 )) -ge 300
curl -s -o /dev/null -X POST "$F/_fake/latency?ms=0"

# ---- BatchGetSecretValue refused: prefetch falls back to single calls ----
reset
curl -s -o /dev/null -X POST \
  "$F/_fake/fail?op=BatchGetSecretValue&status=400&type=AccessDeniedException&count=1"
start_stash fallback STASH_PREFETCH_SECRETS="s05, s06 ,s07,denied"
check "refused batch: one BatchGetSecretValue, then 4 GetSecretValue" \
  wait_calls "1 4" BatchGetSecretValue GetSecretValue
expect_eq "a fallen-back secret is cached: 200" 200 "$(get "$U/secretsmanager/get?secretId=s06")"
expect_eq "... with no further call" "1 4" "$(calls BatchGetSecretValue GetSecretValue)"
check "the refusal is logged with the permission to add" \
  grep -q 'BatchGetSecretValue was refused (AccessDeniedException).*secretsmanager:BatchGetSecretValue' "$T/fallback.log"
check "the denied secret's failure is logged by name" \
  grep -q 'prefetch of secret denied failed with status 400' "$T/fallback.log"
expect_eq "the denied secret is fetched again on demand: 400" 400 \
  "$(get "$U/secretsmanager/get?secretId=denied")"
expect_eq "... with a call of its own" "5" "$(calls GetSecretValue)"

# ---- /secretsmanager/batch ----
reset
start_stash api
B="$U/secretsmanager/batch"
expect_eq "batch of two misses: 200" 200 "$(get "$B?secretId=s00&secretId=s01")"
expect_eq "... one BatchGetSecretValue, no single call" "1 0" \
  "$(calls BatchGetSecretValue GetSecretValue)"
check "Content-Type application/json" grep -qi '^content-type: application/json' "$T/headers"
expect_eq "SecretValues in the order asked" "['s00', 's01']" "$(j '[v["Name"] for v in d["SecretValues"]]')"
expect_eq "no Errors" "[]" "$(j 'd["Errors"]')"
expect_eq "the same batch again: 200" 200 "$(get "$B?secretId=s01&secretId=s00")"
expect_eq "... all hits: no call" "1 0" "$(calls BatchGetSecretValue GetSecretValue)"
expect_eq "... in the new order" "['s01', 's00']" "$(j '[v["Name"] for v in d["SecretValues"]]')"
expect_eq "the single path reads the batch's entries: 200" 200 \
  "$(get "$U/secretsmanager/get?secretId=s00")"
cp "$T/body" "$T/single"
expect_eq "... as a hit" "1 0" "$(calls BatchGetSecretValue GetSecretValue)"
get "$B?secretId=s00" >/dev/null
check "a batch item is the single answer without ResultMetadata" python3 -c '
import json, sys
single = json.load(open(sys.argv[1])); single.pop("ResultMetadata")
item = json.load(open(sys.argv[2]))["SecretValues"][0]
sys.exit(single != item)' "$T/single" "$T/body"
expect_eq "hit, miss, not found, denied and a duplicate in one batch: 200" 200 \
  "$(get "$B?secretId=s00&secretId=s03&secretId=nope&secretId=s04&secretId=denied&secretId=s03")"
expect_eq "... one more BatchGetSecretValue for the misses" "2 0" \
  "$(calls BatchGetSecretValue GetSecretValue)"
expect_eq "values, each once, in order" "['s00', 's03', 's04']" \
  "$(j '[v["Name"] for v in d["SecretValues"]]')"
expect_eq "unicode JSON value intact" '{"k":"été ☃","n":[1,2]}' "$(j 'd["SecretValues"][1]["SecretString"]')"
expect_eq "binary value as base64" "AAEC/w== None" \
  "$(j 'd["SecretValues"][2]["SecretBinary"], d["SecretValues"][2]["SecretString"]' | tr -d "(),'")"
expect_eq "errors with AWS's codes" "[('nope', 'ResourceNotFoundException'), ('denied', 'AccessDeniedException')]" \
  "$(j '[(e["SecretId"], e["ErrorCode"]) for e in d["Errors"]]')"
check "error messages are set" test "$(j 'all(e["Message"] for e in d["Errors"])')" = True
expect_eq "the failed ids are not cached: asked again, another call" 200 "$(get "$B?secretId=nope")"
expect_eq "... made" "3" "$(calls BatchGetSecretValue)"
q=$(python3 -c 'print("&".join("secretId=x%d" % i for i in range(21)))')
expect_eq "21 ids: 400" 400 "$(get "$B?$q")"
expect_eq "... ValidationException" ValidationException "$(j 'd["__type"]')"
expect_eq "no id: 400" 400 "$(get "$B")"
expect_eq "no token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$B?secretId=s00")"

# ---- /systemsmanager/parameters/batch ----
P="$U/systemsmanager/parameters/batch"
expect_eq "parameters batch with an unknown name: 200" 200 \
  "$(get "$P?name=%2Fp%2F00&name=%2Fp%2Fmissing&name=%2Fp%2F01&withDecryption=true")"
expect_eq "... one GetParameters" "1 0" "$(calls GetParameters GetParameter)"
expect_eq "Parameters in order" "['/p/00', '/p/01']" "$(j '[p["Name"] for p in d["Parameters"]]')"
expect_eq "decrypted SecureString value, unicode intact" "pv-01,ü" "$(j 'd["Parameters"][1]["Value"]')"
expect_eq "InvalidParameters" "['/p/missing']" "$(j 'd["InvalidParameters"]')"
expect_eq "the single path reads its entries: 200" 200 \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2F01&withDecryption=true")"
expect_eq "... as a hit" "1 0" "$(calls GetParameters GetParameter)"
# A selector in a batch name ("/p/v:1") is the same GetParameter(s) Name as the single path's
# name=/p/v&version=1 (or name=/p/v:1, or a label): one cache entry for all of them.
expect_eq "a batch of /p/v:1 and /p/v:old: 200" 200 "$(get "$P?name=%2Fp%2Fv%3A1&name=%2Fp%2Fv%3Aold")"
expect_eq "... one more GetParameters" "2 0" "$(calls GetParameters GetParameter)"
expect_eq "... the two versions' values" "['one', 'one']" "$(j '[p["Value"] for p in d["Parameters"]]')"
expect_eq "name=/p/v&version=1 after it: 200" 200 "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2Fv&version=1")"
expect_eq "... its value" "one" "$(j 'd["Parameter"]["Value"]')"
expect_eq "... a hit of the batch's entry" "2 0" "$(calls GetParameters GetParameter)"
expect_eq "name=/p/v&label=old and name=/p/v:1: 200 200" "200 200" \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2Fv&label=old") $(get "$U/systemsmanager/parameters/get?name=%2Fp%2Fv%3A1")"
expect_eq "... hits too" "2 0" "$(calls GetParameters GetParameter)"
expect_eq "name=/p/v&version=2 is another entry: 200" 200 "$(get "$U/systemsmanager/parameters/get?name=%2Fp%2Fv&version=2")"
expect_eq "... one GetParameter" "2 1" "$(calls GetParameters GetParameter)"
expect_eq "... with version 2's value" "two" "$(j 'd["Parameter"]["Value"]')"
q=$(python3 -c 'print("&".join("name=/x%d" % i for i in range(11)))')
expect_eq "11 names: 400" 400 "$(get "$P?$q")"
finish
