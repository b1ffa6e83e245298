# tests/integration/lib.sh: sourced by every integration script.
#   check "description" command...   runs the command; "ok - ..." or "not ok - ..."
#   expect_eq "description" want got
#   finish                           prints "N passed, N failed" and exits non-zero on failure
#   free_port                        prints a free loopback TCP port
#   wait_port PORT [SECONDS]         waits until something listens on 127.0.0.1:PORT
#   bg NAME command...               starts a background process, logs to $T/NAME.log; killed at exit
#   start_fake_aws ARGS...           starts fake-aws ($BUILD/bin/fake-aws --port 0 ARGS) as "fa";
#                                    sets FAP to its port and checks it came up
# $BUILD (default build) and $STASH_ROOT are exported by tests/run.sh; $T is a scratch dir.
set -uo pipefail
: "${STASH_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BUILD:=build}"
case "$BUILD" in /*) ;; *) BUILD=$STASH_ROOT/$BUILD ;; esac
T=$(mktemp -d)
_passed=0
_failed=0
_pids=()

_cleanup() {
  local p
  for p in "${_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap _cleanup EXIT

_result() {
  if [ "$1" = 0 ]; then
    _passed=$((_passed + 1)); echo "ok - $2"
  else
    _failed=$((_failed + 1)); echo "not ok - $2"
  fi
}

check() {
  local desc=$1; shift
  "$@" >"$T/check.out" 2>&1
  local rc=$?
  [ "$rc" = 0 ] || sed 's/^/#   /' "$T/check.out" | head -20
  _result "$rc" "$desc"
}

expect_eq() {
  if [ "$2" = "$3" ]; then
    _result 0 "$1"
  else
    echo "#   want: $2"; echo "#   got:  $3"
    _result 1 "$1"
  fi
}

finish() {
  echo "$_passed passed, $_failed failed"
  [ "$_failed" = 0 ]
  exit $?
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  local port=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 50; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.02
  done
  echo "# nothing listens on $port after ${secs}s" >&2
  return 1
}

bg() {
  local name=$1; shift
  "$@" >"$T/$name.log" 2>&1 &
  _pids+=($!)
}

start_fake_aws() {
  local _
  bg fa "$BUILD/bin/fake-aws" --port 0 "$@"
  for _ in $(seq 200); do grep -q 'listening on' "$T/fa.log" && break; sleep 0.05; done
  FAP=$(sed -n 's/^fake-aws listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/fa.log")
  check "fake-aws is up" test -n "$FAP"
}
