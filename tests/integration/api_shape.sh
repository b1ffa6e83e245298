#!/usr/bin/env bash
# stash's shaping parameters (raw, jsonKey, split) through curl against stash + fake-aws: status,
# Content-Type and the exact bytes of every answer (unicode, escapes, a binary secret with NUL
# bytes, big numbers, nested JSON, StringList items), the errors and their JSON bodies (never
# holding the secret), and that shaped and plain reads of one secret or parameter share one
# cache entry: one upstream call between them (fake-aws's /_fake/stats).
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash

# The test's own data: what each answer must be is written out below, byte for byte.
python3 - "$T/data.json" <<'PY'
import base64, json, sys
secret_json = ('{"user":"admin","p\u00e4ssw\u00f6rd":"s\u00e9\\"cret\\\\ \u2603 \\ud83d\\ude00",'
               '"n":12345678901234567890,"nested":{"a":[1,{"b":null}],"s":"x,y"},"empty":"",'
               '"dup":"first","dup":"last"}')
data = {
    "Secrets": [
        {"Name": "shape/json", "Versions": [{"SecretString": secret_json}]},
        {"Name": "shape/text", "Versions": [{"SecretString": "h\u00e9llo \u2603 \U0001F600 \"q\"\n"}]},
        {"Name": "shape/bin", "Versions": [{"SecretBinary":
            base64.b64encode(b"\x00\x01\x00\xff\xfe\x00").decode()}]},
        {"Name": "shape/notjson", "Versions": [{"SecretString": "plain-Secret-Value"}]},
    ],
    "Parameters": [
        {"Name": "/shape/list", "Type": "StringList", "Value": "a,b,,c \u2603,\"q\""},
        {"Name": "/shape/str", "Type": "String", "Value": "v \u00e9, not a list"},
        {"Name": "/shape/secure", "Type": "SecureString", "Value": "s3cure-Pa55"},
    ],
}
json.dump(data, open(sys.argv[1], "w"))
PY

start_fake_aws --data "$T/data.json"
F=http://127.0.0.1:$FAP
port=$(free_port)
bg stash env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDEXAMPLE \
  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY AWS_SESSION_TOKEN=shape-token \
  AWS_ENDPOINT_URL="$F" PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" \
  PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug "$STASH"
wait_port "$port" || { cat "$T/stash.log"; finish; }
U=http://127.0.0.1:$port
H='X-Aws-Parameters-Secrets-Token: shape-token'

get() {  # URL: body in $T/body; prints "status|content-type"
  local code
  code=$(curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' -H "$H" "$1")
  printf '%s|%s' "$code" "$(grep -i '^content-type:' "$T/headers" | tr -d '\r' | cut -d' ' -f2-)"
}
want() {  # printf-format bytes: the exact body expected, into $T/want
  # shellcheck disable=SC2059
  printf "$1" >"$T/want"
}
same() { cmp "$T/want" "$T/body"; }
jtype() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["__type"])' "$T/body"; }
calls() {
  curl -s "$F/_fake/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"][sys.argv[1]]["calls"])' "$1"
}
TEXT='text/plain; charset=utf-8'

# ---- secrets: raw ----
c0=$(calls GetSecretValue)
expect_eq "raw SecretString: 200 text/plain utf-8" "200|$TEXT" "$(get "$U/secretsmanager/get?secretId=shape%2Ftext&raw=true")"
want 'h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 "q"\n'
check "raw SecretString: the exact bytes" same
expect_eq "plain read of the same secret: 200 JSON" "200|application/json" "$(get "$U/secretsmanager/get?secretId=shape%2Ftext")"
check "plain read: the AWS-shaped answer with the same SecretString" python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["Name"] == "shape/text" and d["SecretString"] == "h\u00e9llo \u2603 \U0001F600 \"q\"\n", d' "$T/body"
expect_eq "raw then plain: one upstream call between them" $((c0 + 1)) "$(calls GetSecretValue)"
expect_eq "raw via /v1/: 200 from the same entry" "200|$TEXT" "$(get "$U/v1/shape%2Ftext?raw=1")"
check "raw via /v1/: the exact bytes" same
expect_eq "still one upstream call" $((c0 + 1)) "$(calls GetSecretValue)"

expect_eq "raw SecretBinary: 200 application/octet-stream" "200|application/octet-stream" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fbin&raw=true")"
want '\x00\x01\x00\xff\xfe\x00'
check "raw SecretBinary: its 6 decoded bytes, NULs included" same

# ---- secrets: jsonKey ----
c1=$(calls GetSecretValue)
expect_eq "jsonKey=user: 200 text/plain" "200|$TEXT" "$(get "$U/secretsmanager/get?secretId=shape%2Fjson&jsonKey=user")"
want 'admin'
check "jsonKey=user: admin" same
expect_eq "jsonKey with a non-ASCII key (percent-encoded UTF-8)" "200|$TEXT" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fjson&jsonKey=p%C3%A4ssw%C3%B6rd")"
want 's\xc3\xa9"cret\\ \xe2\x98\x83 \xf0\x9f\x98\x80'
check "its value unescaped, exact bytes" same
expect_eq "jsonKey=n (a number): application/json" "200|application/json" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fjson&jsonKey=n")"
want '12345678901234567890'
check "the number's exact text, not rounded" same
expect_eq "jsonKey=nested: application/json" "200|application/json" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fjson&jsonKey=nested")"
want '{"a":[1,{"b":null}],"s":"x,y"}'
check "the nested object's exact text" same
expect_eq "jsonKey=empty: 200, empty body" "200|$TEXT" "$(get "$U/secretsmanager/get?secretId=shape%2Fjson&jsonKey=empty")"
check "empty body" test ! -s "$T/body"
expect_eq "a repeated key: the last one" "200|$TEXT" "$(get "$U/v1/shape%2Fjson?jsonKey=dup")"
want 'last'
check "dup: last" same
expect_eq "every jsonKey read came from one upstream call" $((c1 + 1)) "$(calls GetSecretValue)"

expect_eq "missing key: 404 JSON" "404|application/json" "$(get "$U/secretsmanager/get?secretId=shape%2Fjson&jsonKey=nope")"
expect_eq "404 type JsonKeyNotFound" JsonKeyNotFound "$(jtype)"
check "the 404 body holds no secret value" bash -c "! grep -q 'admin\|12345678901234567890' '$T/body'"
expect_eq "jsonKey on a non-JSON secret: 400" "400|application/json" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fnotjson&jsonKey=a")"
expect_eq "400 type SecretNotJson" SecretNotJson "$(jtype)"
check "the 400 body holds no secret value" bash -c "! grep -q 'plain-Secret-Value' '$T/body'"
expect_eq "jsonKey on a binary secret: 400 SecretNotJson" "400|SecretNotJson" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fbin&jsonKey=a" | cut -d'|' -f1)|$(jtype)"

# ---- parameters ----
g0=$(calls GetParameter)
expect_eq "raw String parameter: 200 text/plain" "200|$TEXT" "$(get "$U/systemsmanager/parameters/get?name=%2Fshape%2Fstr&raw=true")"
want 'v \xc3\xa9, not a list'
check "its Value, exact bytes" same
expect_eq "plain read of it: JSON" "200|application/json" "$(get "$U/systemsmanager/parameters/get?name=%2Fshape%2Fstr")"
expect_eq "raw then plain parameter: one upstream call" $((g0 + 1)) "$(calls GetParameter)"
expect_eq "raw split StringList: application/json" "200|application/json" \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fshape%2Flist&raw=true&split=true")"
want '["a","b","","c \xe2\x98\x83","\\"q\\""]'
check "its items as a JSON array, exact bytes" same
expect_eq "raw StringList without split: the Value" "200|$TEXT" \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fshape%2Flist&raw=true")"
want 'a,b,,c \xe2\x98\x83,"q"'
check "the Value as stored" same
expect_eq "raw SecureString withDecryption: the plaintext" "200|$TEXT" \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fshape%2Fsecure&withDecryption=true&raw=true")"
want 's3cure-Pa55'
check "plaintext bytes" same
expect_eq "split on a String: 400 ParameterNotStringList" "400|ParameterNotStringList" \
  "$(get "$U/systemsmanager/parameters/get?name=%2Fshape%2Fstr&raw=true&split=true" | cut -d'|' -f1)|$(jtype)"

# ---- bad combinations: 400 before any upstream call ----
c2=$(calls GetSecretValue)
for q in "secretId=shape%2Fjson&raw=true&jsonKey=user" "secretId=shape%2Fjson&raw=maybe" \
  "secretId=shape%2Fjson&jsonKey=" "secretId=shape%2Fjson&raw=true&split=true"; do
  expect_eq "$q: 400 ValidationException" "400|ValidationException" \
    "$(get "$U/secretsmanager/get?$q" | cut -d'|' -f1)|$(jtype)"
done
for q in "name=%2Fshape%2Flist&split=true" "name=%2Fshape%2Flist&jsonKey=a" \
  "name=%2Fshape%2Flist&raw=true&split=yes"; do
  expect_eq "$q: 400 ValidationException" "400|ValidationException" \
    "$(get "$U/systemsmanager/parameters/get?$q" | cut -d'|' -f1)|$(jtype)"
done
expect_eq "no upstream call for a refused combination" "$c2" "$(calls GetSecretValue)"

# ---- errors pass through as AWS gave them ----
expect_eq "raw on an unknown secret: AWS's 400 JSON" "400|application/json" \
  "$(get "$U/secretsmanager/get?secretId=shape%2Fnone&raw=true")"
expect_eq "type ResourceNotFoundException" ResourceNotFoundException "$(jtype)"

check "no secret value in stash's log" bash -c \
  "! grep -q 'admin\|plain-Secret-Value\|s3cure-Pa55\|12345678901234567890\|héllo' '$T/stash.log'"
finish
