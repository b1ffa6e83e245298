#!/usr/bin/env bash
# What ships: the layer zips and the static binaries in them.
#  - each zip holds extensions/stash (0755) and nothing else, is at most 2 MB and reproducible;
#  - the binaries need no shared library (no interpreter, nothing NEEDED);
#  - the unpacked x86_64 layer runs under lambda-sim end to end inside a chroot that holds
#    nothing but the layer and /etc/hosts: no libc, no loader, no CA bundle, no shell;
#  - the arm64 binary, under qemu-user: --version, /ping and a secret from fake-aws, then one
#    lambda-sim run in which every invocation gets its EMF line.
# fake-aws is reached as http://localhost:PORT, so stash's resolver (musl's, reading /etc/hosts)
# really runs.  Needs root for chroot, qemu-aarch64 (qemu-user) and unzip.
source "$(dirname "$0")/lib.bash"

SIM=$BUILD/bin/lambda-sim
FA=$BUILD/bin/fake-aws
ZIP64=$BUILD/layer/stash-x86_64.zip
ZIPARM=$BUILD/layer/stash-arm64.zip
DATA=$STASH_ROOT/sim/fake_aws/sample-data.json
AKID=AKIDEXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

for f in "$SIM" "$FA" "$ZIP64" "$ZIPARM" "$(command -v qemu-aarch64)" "$(command -v unzip)"; do
  if [ ! -e "$f" ]; then
    expect_eq "present: ${f:-qemu-aarch64 or unzip}" yes no
    finish
  fi
done

# ---- the zips -------------------------------------------------------------------------------
for arch in x86_64 arm64; do
  z=$BUILD/layer/stash-$arch.zip
  expect_eq "$arch zip: one entry, extensions/stash" "extensions/stash" \
    "$(unzip -Z1 "$z" | tr '\n' ' ' | sed 's/ $//')"
  expect_eq "$arch zip: mode 0755" "-rwxr-xr-x" "$(unzip -Z "$z" extensions/stash | awk '{print $1}')"
  check "$arch zip: at most 2 MB ($(stat -c %s "$z") bytes)" test "$(stat -c %s "$z")" -le 2097152
  mkdir -p "$T/$arch/opt"
  unzip -q "$z" -d "$T/$arch/opt"
  bin=$T/$arch/opt/extensions/stash
  want=$([ "$arch" = x86_64 ] && echo 'X86-64' || echo 'AArch64')
  check "$arch binary: machine $want" bash -c "readelf -h '$bin' | grep -q 'Machine:.*$want'"
  check "$arch binary: no interpreter, no shared library" \
    bash -c "! readelf -l '$bin' | grep -q INTERP && ! readelf -d '$bin' 2>/dev/null | grep -q NEEDED"
  # Reproducible: packing the same binary again gives the same bytes.
  "$STASH_ROOT/scripts/make-layer.sh" "$BUILD/lean/$arch/stash" "$T/again-$arch.zip" \
    "$([ "$arch" = arm64 ] && echo aarch64-linux-gnu-)strip"
  expect_eq "$arch zip: reproducible" "$(sha256sum <"$z")" "$(sha256sum <"$T/again-$arch.zip")"
done
check "ldd: the x86_64 binary is static" \
  bash -c "ldd '$T/x86_64/opt/extensions/stash' 2>&1 | grep -Eq 'not a dynamic executable|statically linked'"

# The build's guard: a static binary passes; a glibc-dynamic one is refused, naming the symbol
# newer than Amazon Linux 2's glibc and each library Lambda's images lack.
check "check-static accepts the shipped binary" "$STASH_ROOT/scripts/check-static.sh" "$BUILD/lean/x86_64/stash"
printf 'int main(void) { return 0; }\n' >"$T/dyn.c"
gcc -o "$T/dyn" "$T/dyn.c"
"$STASH_ROOT/scripts/check-static.sh" "$T/dyn" >"$T/dyn.out" 2>&1
expect_eq "check-static refuses a glibc 2.34 binary" 1 $?
check "... naming the symbol" grep -q '__libc_start_main@GLIBC_2.34, newer than' "$T/dyn.out"
"$STASH_ROOT/scripts/check-static.sh" "$BUILD/system/extensions/stash" >"$T/sys.out" 2>&1
check "check-static names a library the images lack (the system build)" \
  grep -q 'needs libmicrohttpd.so' "$T/sys.out"

# ---- fake-aws, reached by name --------------------------------------------------------------
start_fake_aws --data "$DATA" --access-key "$AKID" --secret-key "$SECRET"
FAURL=http://localhost:$FAP
gsv_calls() {
  curl -s "http://127.0.0.1:$FAP/_fake/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"]["GetSecretValue"]["calls"])'
}

# ---- arm64 under qemu, standalone -----------------------------------------------------------
ARM=$T/arm64/opt/extensions/stash
expect_eq "arm64 --version under qemu" "stash $("$BUILD/extensions/stash" --version | cut -d' ' -f2)" \
  "$(qemu-aarch64 "$ARM" --version 2>&1)"
port=$(free_port)
bg arm-stash env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AKID \
  AWS_SECRET_ACCESS_KEY=$SECRET AWS_SESSION_TOKEN=arm-token AWS_ENDPOINT_URL=$FAURL \
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=$port qemu-aarch64 "$ARM"
wait_port "$port" 30 || sed 's/^/#   /' "$T/arm-stash.log"
expect_eq "arm64: /ping" "healthy" "$(curl -s "http://127.0.0.1:$port/ping")"
before=$(gsv_calls)
body=$(curl -s -H 'X-Aws-Parameters-Secrets-Token: arm-token' \
  "http://127.0.0.1:$port/secretsmanager/get?secretId=prod/db")
expect_eq "arm64: a secret from fake-aws, signed and parsed" "prod/db" \
  "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Name"])' "$body" 2>&1)"
expect_eq "arm64: one GetSecretValue made" "$((before + 1))" "$(gsv_calls)"
kill "${_pids[-1]}" 2>/dev/null

# ---- under lambda-sim -------------------------------------------------------------------------
# The function reads prod/db through stash on every invoke and answers with the status.
cat >"$T/function.sh" <<'EOF'
#!/usr/bin/env bash
API=http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime
LOCAL=http://127.0.0.1:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
for _ in $(seq 500); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$LOCAL/ping")" = 200 ] && break
  sleep 0.02
done
while true; do
  hdr=$(mktemp)
  curl -s -D "$hdr" -o /dev/null "$API/invocation/next" || exit 1
  rid=$(tr -d '\r' <"$hdr" | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *//p')
  rm -f "$hdr"
  code=$(curl -s -o /dev/null -w '%{http_code}' \
    -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" "$LOCAL/secretsmanager/get?secretId=prod/db")
  curl -s -o /dev/null -X POST "$API/invocation/$rid/response" -d "\"$code\""
done
EOF
chmod +x "$T/function.sh"

# run NAME WRAPPER-BODY: lambda-sim with extensions/stash being WRAPPER-BODY (a bash line that
# execs the binary under test, keeping its name), three invokes, then SHUTDOWN.  Prints nothing;
# leaves the log stream in $T/logs-NAME and the answers in $T/answers-NAME.
run() {
  local name=$1 wrapper=$2 simp="" i
  mkdir -p "$T/ext-$name" "$T/logs-$name"
  printf '#!/usr/bin/env bash\n%s\n' "$wrapper" >"$T/ext-$name/stash"
  chmod +x "$T/ext-$name/stash"
  "$SIM" --function "$T/function.sh" --extensions "$T/ext-$name" --port 0 --logs "$T/logs-$name" \
    --ready-file "$T/ready-$name" --function-name layer-fn --max-envs 1 --timeout 60 \
    --init-timeout 120 --env AWS_ACCESS_KEY_ID=$AKID --env AWS_SECRET_ACCESS_KEY=$SECRET \
    --env AWS_ENDPOINT_URL=$FAURL --env PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$(free_port)" \
    >"$T/sim-$name.log" 2>&1 &
  local simpid=$!
  _pids+=("$simpid")
  for _ in $(seq 600); do [ -s "$T/ready-$name" ] && simp=$(cat "$T/ready-$name") && break; sleep 0.05; done
  : >"$T/answers-$name"
  for i in 1 2 3; do
    curl -s -D "$T/h" -X POST -d '{}' "http://127.0.0.1:$simp/2015-03-31/functions/function/invocations" \
      >>"$T/answers-$name"
    echo " $(tr -d '\r' <"$T/h" | sed -n 's/^[Xx]-[Aa]mzn-[Rr]equest[Ii]d: *//p')" >>"$T/answers-$name"
    # one environment: the next invoke is taken once this one has ended
    for _ in $(seq 500); do
      grep -aq "^END RequestId: $(tail -1 "$T/answers-$name" | cut -d' ' -f2)" "$T/logs-$name"/* 2>/dev/null && break
      sleep 0.02
    done
  done
  kill -TERM "$simpid" 2>/dev/null
  wait "$simpid" 2>/dev/null
}

# Checks one run: three 200s; one EMF line per invocation with its requestId, the first a
# miss and the others hits; one GetSecretValue for the three.
verify() {
  local name=$1 calls_before=$2
  expect_eq "$name: the function got three 200s" '"200" "200" "200"' \
    "$(cut -d' ' -f1 "$T/answers-$name" | tr '\n' ' ' | sed 's/ $//')"
  cut -d' ' -f2 "$T/answers-$name" >"$T/rids-$name"
  expect_eq "$name: one EMF line per invocation: misses, hits" "1 0,0 1,0 1" \
    "$(cat "$T/logs-$name"/* | grep -a '^{"_aws"' | python3 -c '
import json, sys
rids = open(sys.argv[1]).read().split()
by = {}
for line in sys.stdin:
    d = json.loads(line)
    if d.get("requestId") in rids:
        by[d["requestId"]] = "%d %d" % (d["CacheMisses"], d["CacheHits"])
print(",".join(by.get(r, "none") for r in rids))' "$T/rids-$name")"
  expect_eq "$name: one GetSecretValue for three reads" "$((calls_before + 1))" "$(gsv_calls)"
}

# x86_64: the unpacked layer in a chroot with nothing else in it.
ROOT=$T/root
mkdir -p "$ROOT/etc" "$ROOT/tmp"
cp -a "$T/x86_64/opt" "$ROOT/opt"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOT/etc/hosts"
check "the chroot holds no library and no loader" \
  bash -c "[ -z \"\$(find '$ROOT' -name '*.so*' -o -name 'ld-*')\" ]"
before=$(gsv_calls)
run chroot "exec -a stash chroot '$ROOT' /opt/extensions/stash"
verify chroot "$before"

# arm64: the same function, stash under qemu.
before=$(gsv_calls)
run qemu "exec -a stash qemu-aarch64 '$ARM'"
verify qemu "$before"

finish
