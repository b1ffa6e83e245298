#!/usr/bin/env bash
# Upstream over TLS with certificates verified: socat terminates TLS in front of fake-aws with a
# certificate for "localhost" from a CA made here.  stash must be served through it when the CA
# bundle it finds is that CA, and answer 502 ConnectionError with another CA and with a host
# name the certificate does not name.  The bundle is found as cache/cabundle.h says:
# AWS_CA_BUNDLE, then SSL_CERT_FILE, then the images' own paths; the choice is logged at debug.
source "$(dirname "$0")/lib.bash"

STASH=$BUILD/extensions/stash
FA=$BUILD/bin/fake-aws
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
for f in "$STASH" "$FA" "$(command -v socat)" "$(command -v openssl)"; do
  if [ ! -x "$f" ]; then
    expect_eq "present: ${f:-socat or openssl}" yes no
    finish
  fi
done

# ---- a CA, a certificate for localhost signed by it, and an unrelated CA --------------------
mkca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=stash test $1" -keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null
}
mkca ca
mkca other-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  >"$T/server.ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
  -days 2 -extfile "$T/server.ext" -out "$T/server.pem" 2>/dev/null
check "test certificates made" test -s "$T/server.pem" -a -s "$T/other-ca.pem"

start_fake_aws --data "$DATA" --access-key "$AKID" --secret-key "$SECRET"
TP=$(free_port)
bg tls socat "OPENSSL-LISTEN:$TP,bind=127.0.0.1,reuseaddr,fork,cert=$T/server.pem,key=$T/server.key,verify=0" \
  "TCP:127.0.0.1:$FAP"
wait_port "$TP" || sed 's/^/#   /' "$T/tls.log"

# fetch NAME ENDPOINT ENV...: starts stash with ENV, asks for prod/db once, stops it.  Prints
# "STATUS TYPE-OR-NAME"; stash's log is kept in $T/stash-NAME.log.
fetch() {
  local name=$1 endpoint=$2 port pid
  shift 2
  port=$(free_port)
  env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET \
    AWS_SESSION_TOKEN=tls-token AWS_ENDPOINT_URL="$endpoint" STASH_MAX_ATTEMPTS=1 \
    PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" \
    "$@" "$STASH" >"$T/stash-$name.log" 2>&1 &
  pid=$!
  _pids+=("$pid")
  wait_port "$port" >/dev/null 2>&1
  curl -s -o "$T/body-$name" -w '%{http_code}' -H 'X-Aws-Parameters-Secrets-Token: tls-token' \
    "http://127.0.0.1:$port/secretsmanager/get?secretId=prod/db" >"$T/code-$name"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  printf '%s %s' "$(cat "$T/code-$name")" "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d.get("Name") or d.get("__type"))' "$T/body-$name" 2>/dev/null)"
}

expect_eq "the test CA in AWS_CA_BUNDLE: served through TLS" "200 prod/db" \
  "$(fetch right "https://localhost:$TP" AWS_CA_BUNDLE="$T/ca.pem")"
check "the bundle used is logged at debug" grep -q "CA bundle: $T/ca.pem (AWS_CA_BUNDLE)" "$T/stash-right.log"
expect_eq "another CA: 502 ConnectionError" "502 ConnectionError" \
  "$(fetch wrong-ca "https://localhost:$TP" AWS_CA_BUNDLE="$T/other-ca.pem")"
expect_eq "a host name the certificate does not name: 502 ConnectionError" "502 ConnectionError" \
  "$(fetch wrong-host "https://127.0.0.1:$TP" AWS_CA_BUNDLE="$T/ca.pem")"
expect_eq "SSL_CERT_FILE when AWS_CA_BUNDLE is unset" "200 prod/db" \
  "$(fetch sslcert "https://localhost:$TP" SSL_CERT_FILE="$T/ca.pem")"
check "... and logged as SSL_CERT_FILE" grep -q "CA bundle: $T/ca.pem (SSL_CERT_FILE)" "$T/stash-sslcert.log"
expect_eq "AWS_CA_BUNDLE unreadable: skipped for SSL_CERT_FILE" "200 prod/db" \
  "$(fetch skip "https://localhost:$TP" AWS_CA_BUNDLE="$T/nope.pem" SSL_CERT_FILE="$T/ca.pem")"
check "... with a warning naming the variable" grep -q "AWS_CA_BUNDLE names $T/nope.pem" "$T/stash-skip.log"
check "no credential in any log" bash -c "! grep -q 'wJalrXUtnFEMI\|tls-token' '$T'/stash-*.log"

finish
