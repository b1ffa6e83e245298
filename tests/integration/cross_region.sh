#!/usr/bin/env bash
# A secret or parameter ARN in another Region goes to that Region's endpoint, signed for it:
# two fake-aws, one per Region (each checks that signatures name its own Region), stash
# configured for us-east-1 with STASH_REGION_ENDPOINTS naming both, and fake-aws's
# /_fake/stats counting which one each request reached.  Then an AWS_ENDPOINT_URL override,
# which wins for every Region: the eu-west-1 ARN goes to the us-east-1 fake-aws, still signed
# for eu-west-1, which refuses it.
source "$(dirname "$0")/lib.bash"
STASH=$BUILD/extensions/stash
FAKE=$BUILD/bin/fake-aws
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
if [ ! -x "$FAKE" ] || [ ! -x "$STASH" ] || [ ! -f "$DATA" ]; then
  echo "not ok - stash, fake-aws or its sample data is missing ($STASH, $FAKE, $DATA)"
  echo "0 passed, 1 failed"
  exit 1
fi

AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
TOKEN=cross-region-token-$$
ACCOUNT=123456789012
cat >"$T/eu.json" <<JSON
{"AccountId": "$ACCOUNT",
 "Secrets": [{"Name": "eu/db", "Versions": [{"SecretString": "eu-value"}]}],
 "Parameters": [{"Name": "/eu/p", "Type": "String", "Value": "eu-param"}]}
JSON

# fake_on NAME REGION DATA: starts a fake-aws for REGION; sets FPORT to its port.  Not run in a
# command substitution: bg must record the process in this shell's _pids, which the exit trap
# stops.
fake_on() {
  FPORT=$(free_port)
  bg "$1" "$FAKE" --port "$FPORT" --data "$3" --region "$2" --access-key "$AKID" \
    --secret-key "$SECRET" --session-token "$TOKEN"
  wait_port "$FPORT" || cat "$T/$1.log"
}
fake_on fake-us us-east-1 "$DATA"
US=$FPORT
fake_on fake-eu eu-west-1 "$T/eu.json"
EU=$FPORT

# stat PORT OP FIELD: one counter of fake-aws's /_fake/stats; FIELD "auth_failures" is global.
stat() {
  curl -s "http://127.0.0.1:$1/_fake/stats" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d[sys.argv[2]] if sys.argv[1] == "-" else d["ops"][sys.argv[1]][sys.argv[2]])' "$2" "$3"
}

# Starts stash NAME with extra VAR=value settings; sets $U to its base URL.
start_stash() {
  local name=$1 port
  shift
  port=$(free_port)
  bg "$name" env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID \
    AWS_SECRET_ACCESS_KEY="$SECRET" AWS_SESSION_TOKEN="$TOKEN" STASH_MAX_ATTEMPTS=1 \
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" "$@" "$STASH"
  wait_port "$port" || cat "$T/$name.log"
  U=http://127.0.0.1:$port
}
H="X-Aws-Parameters-Secrets-Token: $TOKEN"
get() {  # PATH KEY=VALUE: body in $T/body, prints the status
  curl -s -o "$T/body" -w '%{http_code}' -H "$H" -G --data-urlencode "$2" "$U$1"
}
j() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/body" "$1"; }

SM=/secretsmanager/get
SSM=/systemsmanager/parameters/get
EU_SECRET=arn:aws:secretsmanager:eu-west-1:$ACCOUNT:secret:eu/db
EU_PARAM=arn:aws:ssm:eu-west-1:$ACCOUNT:parameter/eu/p

start_stash map STASH_REGION_ENDPOINTS="us-east-1=http://127.0.0.1:$US,eu-west-1=http://127.0.0.1:$EU"
expect_eq "a name: 200" 200 "$(get $SM secretId=prod/db)"
expect_eq "a name goes to the configured Region's endpoint" "1 0" \
  "$(stat "$US" GetSecretValue calls) $(stat "$EU" GetSecretValue calls)"
expect_eq "an eu-west-1 secret ARN: 200" 200 "$(get $SM "secretId=$EU_SECRET")"
expect_eq "its value is the eu-west-1 fake-aws's" eu-value "$(j 'd["SecretString"]')"
expect_eq "it went to eu-west-1's endpoint only" "1 1" \
  "$(stat "$US" GetSecretValue calls) $(stat "$EU" GetSecretValue calls)"
expect_eq "an eu-west-1 parameter ARN: 200" 200 "$(get $SSM "name=$EU_PARAM")"
expect_eq "its value is the eu-west-1 fake-aws's" eu-param "$(j 'd["Parameter"]["Value"]')"
expect_eq "it went to eu-west-1's endpoint only" "0 1" \
  "$(stat "$US" GetParameter calls) $(stat "$EU" GetParameter calls)"
# The Region comes from the Name sent (name, then ":" and the label), as the cache key does: an
# ARN split across name and label is the same ARN, so it goes to eu-west-1 too.
split=$(curl -s -o "$T/body" -w '%{http_code}' -H "$H" -G --data-urlencode "name=arn:aws:ssm:eu-west-1" \
  --data-urlencode "label=$ACCOUNT:parameter/eu/p" --data-urlencode "refreshNow=true" "$U$SSM")
expect_eq "an ARN split across name and label: 200, eu-west-1's value" "200 eu-param" \
  "$split $(j 'd["Parameter"]["Value"]')"
expect_eq "  it went to eu-west-1's endpoint" "0 2" \
  "$(stat "$US" GetParameter calls) $(stat "$EU" GetParameter calls)"
expect_eq "the ARN again: 200, from the cache" 200 "$(get $SM "secretId=$EU_SECRET")"
expect_eq "no second call" 1 "$(stat "$EU" GetSecretValue calls)"
expect_eq "every signature was right for the Region it reached" "0 0" \
  "$(stat "$US" - auth_failures) $(stat "$EU" - auth_failures)"
expect_eq "an ARN whose Region field is not a Region: 400" 400 \
  "$(get $SM "secretId=arn:aws:secretsmanager:EU_WEST:$ACCOUNT:secret:eu/db")"
expect_eq "  InvalidParameterException" InvalidParameterException "$(j 'd["__type"]')"

# An override serves every Region: the eu-west-1 ARN reaches the us-east-1 fake-aws, signed for
# eu-west-1, and is refused there; the eu-west-1 fake-aws sees nothing.
start_stash override AWS_ENDPOINT_URL="http://127.0.0.1:$US" \
  STASH_REGION_ENDPOINTS="us-east-1=http://127.0.0.1:$US,eu-west-1=http://127.0.0.1:$EU"
expect_eq "with AWS_ENDPOINT_URL: the eu-west-1 ARN is refused by the us-east-1 endpoint (403)" \
  403 "$(get $SM "secretId=$EU_SECRET")"
expect_eq "  for its signature's Region" InvalidSignatureException "$(j 'd["__type"]')"
expect_eq "  it reached the override, not eu-west-1's endpoint" "2 1 1" \
  "$(stat "$US" GetSecretValue calls) $(stat "$EU" GetSecretValue calls) $(stat "$US" - auth_failures)"

# A malformed map stops the start with the variable named.
env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY="$SECRET" \
  AWS_SESSION_TOKEN="$TOKEN" STASH_REGION_ENDPOINTS="eu-west-1" "$STASH" >"$T/bad.log" 2>&1
expect_eq "a malformed STASH_REGION_ENDPOINTS: exit 2 (bad configuration)" 2 $?
check "  named in the error" grep -q 'STASH_REGION_ENDPOINTS' "$T/bad.log"
finish
