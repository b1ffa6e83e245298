#!/usr/bin/env bash
# bench/run.sh BUILD [--quick]: stash measured side by side with what users would use instead, in
# one run, on loopback only.  Called by `make bench` (QUICK=1 adds --quick).
#
# Every measurement is repeated REPEATS times and appended as one JSON line to $OUT/raw.jsonl;
# bench/report.py turns those into $OUT/bench.json and $OUT/bench.md (medians with min and max,
# ratios against baselines measured in the same run, each target met or missed by how much) and
# prints the summary.  A section whose parts are missing (a binary not built yet) or that fails
# is recorded as such, with the reason, and the others still run.
#
# Full run: $OUT = bench/results (the committed results).  Quick run (--quick, a few seconds, for
# CI): tiny counts, one repeat, $OUT = BUILD/bench/quick, so it never overwrites the real results.
# BENCH_OUT overrides $OUT; BENCH_SECTIONS="hit_latency footprint ..." runs only those.  Every process started here is on 127.0.0.1 and stopped at exit;
# every loop is bounded in count and time.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
QUICK=0
[ "${2:-}" = --quick ] && QUICK=1

# The shipped build is compared with the system build (below) in rounds: HIT_ROUNDS rounds of
# hit latency, TP_ROUNDS of throughput and FP_ROUNDS of footprint, each round measuring both
# builds back to back, in alternating order (A B, then B A), so that drift in the machine's load
# falls on both; the report takes the ratio within each round, then the median of those ratios.
if [ "$QUICK" = 1 ]; then
  OUT=${BENCH_OUT:-$BUILD/bench/quick}
  REPEATS=1 N_HIT=300 N_NODE=100 WRK_SECS=1 N_SCALE=200 N_MISS=100 N_LOAD=24 COLD_RUNS=1
  CONCS="1 8 64" KEYS_SCALE="10 1000" FLOOR_MODES=thread WRK_CONNS="1 8 64"
  HIT_ROUNDS=1 TP_ROUNDS=1 FP_ROUNDS=1 COST_ROUNDS=0 RA_ROUNDS=1 RA_TTLS=2
  AB_ROUNDS=2 AB_C1_ROUNDS=2 AB_SECS=1
else
  OUT=${BENCH_OUT:-$ROOT/bench/results}
  REPEATS=5 N_HIT=20000 N_NODE=2000 WRK_SECS=2 N_SCALE=4000 N_MISS=2000 N_LOAD=400 COLD_RUNS=3
  CONCS="1 2 4 8 16 32 64" KEYS_SCALE="10 100 1000" WRK_CONNS="1 8 64"
  HIT_ROUNDS=${HIT_ROUNDS:-11} TP_ROUNDS=${TP_ROUNDS:-7} FP_ROUNDS=${FP_ROUNDS:-9}
  COST_ROUNDS=${COST_ROUNDS:-5} RA_ROUNDS=${RA_ROUNDS:-5} RA_TTLS=${RA_TTLS:-5}
  AB_ROUNDS=${AB_ROUNDS:-8} AB_C1_ROUNDS=${AB_C1_ROUNDS:-20} AB_SECS=${AB_SECS:-8}
fi
# What `make` builds (static, musl: what ships; the system build under DEPS=system), and the
# build linked against Debian's shared libraries (`make DEPS=system`), measured beside it.  Runs
# of the system build are named like the shipped build's with "_system" after the name.
STASH=$BUILD/extensions/stash
SYSTEM_STASH=$BUILD/system/extensions/stash
LAYER_DIR=$BUILD/layer
FAKE=$BUILD/bin/fake-aws
SIM=$BUILD/bin/lambda-sim
HIT=$BUILD/bench/bench_hit
AB=$BUILD/bench/bench_ab
FLOOR=$BUILD/bench/floor
NODE_DIR=$ROOT/tests/node
FUNCS=$ROOT/sim/functions

# Credentials and names shared by fake-aws, stash and the functions (fake-aws is given the key
# pair and verifies every signature with it; it accepts any session token).
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDBENCHEXAMPLE
export AWS_SECRET_ACCESS_KEY=benchSecretKeyNotARealOne0000000000000000
export AWS_SESSION_TOKEN=bench-session-token
TOKEN_H="X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN"
HOT_SECRET=bench/secret-0
HOT_PATH="/secretsmanager/get?secretId=bench%2Fsecret-0"
KEY_PATH="/secretsmanager/get?secretId=bench%2Fsecret-%d"

W=$(mktemp -d)
RAW=$OUT/raw.jsonl
mkdir -p "$OUT"
: >"$RAW"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "bench: $*" >&2; }

# A python3 that has botocore (Debian's python3-botocore is for /usr/bin/python3).
PY=python3
python3 -c 'import botocore' 2>/dev/null || PY=/usr/bin/python3

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # PORT [SECONDS]
  local i
  for ((i = 0; i < ${2:-10} * 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

# start NAME CMD...: runs CMD in the background (stdout+stderr in $W/NAME.log); sets $PID.
start() {
  local name=$1
  shift
  # Emptied here, not only by the child's redirection: the child opens the file after the fork,
  # and wait_listening must never read the port of an earlier process of the same name.
  : >"$W/$name.log"
  "$@" >"$W/$name.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
}

stop() {  # PID
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

# wait_listening NAME: the port from the "listening on 127.0.0.1:<port>" line of $W/NAME.log.
wait_listening() {
  local i port
  for ((i = 0; i < 500; i++)); do
    port=$(grep -aom1 'listening on 127\.0\.0\.1:[0-9]*' "$W/$1.log" 2>/dev/null | grep -o '[0-9]*$')
    [ -n "$port" ] && { echo "$port"; return 0; }
    sleep 0.01
  done
  say "$1 did not start:"
  tail -5 "$W/$1.log" >&2
  return 1
}

# record SECTION NAME JSON: one measurement (JSON object of numbers) of one repeat.  Fails (and
# records nothing) when the measurement printed no JSON object.
record() {
  case "$3" in
    \{*\}) ;;
    *) say "$1/$2: no measurement"; return 1 ;;
  esac
  printf '{"section":"%s","name":"%s","metrics":%s}\n' "$1" "$2" "$3" >>"$RAW"
}

# note SECTION STATUS REASON: a section's outcome (ok, skipped, failed) and why.
note() {
  printf '{"section":"%s","status":"%s","reason":"%s"}\n' "$1" "$2" "${3//\"/\'}" >>"$RAW"
}

# ---------------------------------------------------------------------------------------------
# The world: bench data for fake-aws (1000 secrets of 4 KB, a parameter per secret), fake-aws
# itself, stash started as a plain local agent (no AWS_LAMBDA_RUNTIME_API), the floor.

have_fake() { [ -x "$FAKE" ]; }
have_sim() { [ -x "$SIM" ]; }
have_node_pkgs() { [ -d "$NODE_DIR/node_modules/@aws-sdk/client-secrets-manager" ]; }

gen_data() {
  $PY "$ROOT/bench/gen_data.py" --secrets 1000 --bytes 4096 >"$W/data.json"
}

FAKE_PORT=
start_fake() {  # starts fake-aws on a free port; sets FAKE_PID, FAKE_PORT, FAKE_URL
  start fake "$FAKE" --port 0 --data "$W/data.json" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" || return 1
  FAKE_PID=$PID
  FAKE_PORT=$(wait_listening fake) || return 1
  FAKE_URL=http://127.0.0.1:$FAKE_PORT
}

# start_stash NAME [VAR=VALUE...] [WRAPPER...]: stash against fake-aws (run through WRAPPER,
# e.g. taskset -c 0, when given); sets STASH_PID, STASH_PORT.  Starts
# $STASH_BIN when set (the system build, or a previous design), else $STASH.
# Every agent-mode stash here runs with STASH_METRICS_MODE=off: the cache alone is measured (as
# under Lambda, where the metrics are the lambda section's), and no EMF line mixes with the JSON
# the bench tools print on stdout.
start_stash() {
  local name=$1
  shift
  STASH_PORT=$(free_port)
  start "$name" env -u AWS_LAMBDA_RUNTIME_API \
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$STASH_PORT" \
    AWS_ENDPOINT_URL_SECRETS_MANAGER="$FAKE_URL" AWS_ENDPOINT_URL_SSM="$FAKE_URL" \
    PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=warn STASH_METRICS_MODE=off "$@" "${STASH_BIN:-$STASH}"
  STASH_PID=$PID
  wait_port "$STASH_PORT" 5 || { say "stash did not listen:"; tail -5 "$W/$name.log" >&2; return 1; }
}

# The system build is measured beside the shipped one when it is built and is not the same
# binary (under DEPS=system it is what `make` built).  A system build that does not answer is
# left out with a message, and the comparisons say "not measured".
SYSTEM_OK=0
have_system() { [ "$SYSTEM_OK" = 1 ]; }
check_system() {
  if [ ! -x "$SYSTEM_STASH" ]; then
    say "no system build ($SYSTEM_STASH): the shipped build is measured alone"
  elif cmp -s "$STASH" "$SYSTEM_STASH"; then
    say "$STASH is the system build (DEPS=system): nothing to compare it with"
  elif STASH_BIN=$SYSTEM_STASH stash_works; then
    SYSTEM_OK=1
  else
    say "the system build does not answer: the shipped build is measured alone"
  fi
}
# variants R: the builds to measure in round R, in that round's order (the shipped build first
# in even rounds, last in odd ones); "stash" is the shipped build, "system" the system build.
variants() {
  if ! have_system; then
    echo stash
  elif (($1 % 2 == 0)); then
    echo stash system
  else
    echo system stash
  fi
}
bin_of() { [ "$1" = system ] && echo "$SYSTEM_STASH" || echo "$STASH"; }
sfx_of() { [ "$1" = system ] && echo _system || true; }  # a run's name suffix for a variant

# stash_works: is the stash here functional (answers a secret from fake-aws)?
stash_works() {
  local code
  start_stash probe || { stop "$STASH_PID"; return 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$TOKEN_H" "http://127.0.0.1:$STASH_PORT$HOT_PATH")
  stop "$STASH_PID"
  [ "$code" = 200 ]
}

# start_floors BODYFILE: the floor in each libmicrohttpd mode (epoll: one internal epoll thread;
# thread: a thread per connection, stash's mode before its epoll pool; pool: two epoll threads,
# stash's mode); sets FLOOR_PORTS[mode]
# and FLOOR_PIDS.  The report takes the best mode per repeat as the floor ("its fastest mode").
FLOOR_MODES=${FLOOR_MODES:-epoll thread pool}
declare -A FLOOR_PORTS
start_floors() {
  local m
  FLOOR_PIDS=()
  for m in $FLOOR_MODES; do
    start "floor-$m" "$FLOOR" --port 0 --body-file "$1" --mode "$m" --threads 2 || return 1
    FLOOR_PIDS+=("$PID")
    FLOOR_PORTS[$m]=$(wait_listening "floor-$m") || return 1
  done
}
stop_floors() {
  local p
  for p in "${FLOOR_PIDS[@]}"; do stop "$p"; done
}

hit() {  # PORT PATH ARGS...: bench_hit in latency mode (token header always sent)
  local port=$1 path=$2
  shift 2
  "$HIT" --port "$port" --path "$path" -H "$TOKEN_H" --expect 200 --max-ms 60000 "$@"
}

rss_kb() {  # PID FIELD (VmHWM: peak, VmRSS: now)
  awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

# warm PORT K: one request for each of keys 0..K-1, so they are cached.
warm() {
  "$HIT" --port "$1" --path "$KEY_PATH" --keys "$2" -n "$2" -w 0 -H "$TOKEN_H" --expect 200 \
    --max-ms 60000 >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Sections.  Each returns non-zero with a reason in $WHY when it cannot produce its numbers.

# hit_stash VARIANT: one latency run against the running stash of that build.
hit_stash() {
  local port=$STASH_PORT
  [ "$1" = system ] && port=$SYS_PORT
  record hit_latency "stash$(sfx_of "$1")" "$(hit "$port" "$HOT_PATH" -n "$N_HIT" -w 500)"
}

sec_hit_latency() {
  local r m v
  if have_system; then
    STASH_BIN=$SYSTEM_STASH start_stash stash-system ||
      { WHY="the system build did not start"; return 1; }
    SYS_PID=$STASH_PID SYS_PORT=$STASH_PORT
  fi
  start_stash stash || { WHY="stash did not start"; return 1; }
  curl -s -H "$TOKEN_H" "http://127.0.0.1:$STASH_PORT$HOT_PATH" >"$W/hot-body.json"
  have_system && { curl -s -H "$TOKEN_H" "http://127.0.0.1:$SYS_PORT$HOT_PATH" >/dev/null; }
  start_floors "$W/hot-body.json" || { WHY="floor did not start"; return 1; }
  for ((r = 0; r < HIT_ROUNDS; r++)); do
    # The builds first in even rounds, last in odd ones, so drift on a shared machine hits all.
    if ((r % 2 == 0)); then
      for v in $(variants "$r"); do hit_stash "$v" || return 1; done
    fi
    for m in $FLOOR_MODES; do
      record hit_latency "floor_$m" "$(hit "${FLOOR_PORTS[$m]}" "$HOT_PATH" -n "$N_HIT" -w 500)" ||
        return 1
    done
    if ((r % 2 == 1)); then
      for v in $(variants "$r"); do hit_stash "$v" || return 1; done
    fi
  done
  # Node: fetch against stash and the floor, Powertools and a direct SDK call, one process.
  if have_node_pkgs; then
    node "$ROOT/bench/node_fetch.mjs" --n "$N_NODE" --rounds "$REPEATS" \
      --stash "http://127.0.0.1:$STASH_PORT$HOT_PATH" \
      --floor "http://127.0.0.1:${FLOOR_PORTS[thread]}$HOT_PATH" \
      --secret "$HOT_SECRET" --endpoint "$FAKE_URL" >"$W/node.jsonl" 2>"$W/node.err" ||
      { WHY="node_fetch failed: $(tail -1 "$W/node.err")"; return 1; }
    cat "$W/node.jsonl" >>"$RAW"
  else
    WHY="npm packages missing (scripts/deps.sh)"
    return 1
  fi
  [ "$QUICK" = 1 ] || profile_hit
  stop_floors
  stop "$STASH_PID"
  have_system && stop "$SYS_PID"
  return 0
}

# profile_hit: where a hit's time goes, sampled with perf while the raw client loops on the hot
# key: share per binary/library (record hit_latency/profile_hit) and the top symbols with their
# call chains in $OUT/profile-hit.txt.  Skipped when perf is missing or not allowed.
profile_hit() {
  command -v perf >/dev/null || { say "perf not found: no profile"; return 0; }
  perf record -F 2999 -g -o "$W/perf.data" -p "$STASH_PID" -- sleep 3 >"$W/perf.log" 2>&1 &
  local perf_pid=$!
  sleep 0.3
  hit "$STASH_PORT" "$HOT_PATH" -n 1000000 -w 100 --max-ms 2500 >/dev/null
  wait "$perf_pid" || { say "perf record failed: $(tail -1 "$W/perf.log")"; return 0; }
  perf report -i "$W/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
    $PY -c '
import json, re, sys
out = {}
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
    if m:
        name = m.group(2).strip("[]").split(".so")[0].replace("kernel.kallsyms", "kernel")
        out[name + "_pct"] = out.get(name + "_pct", 0) + float(m.group(1))
print(json.dumps(out))' >"$W/profile.json"
  record hit_latency profile_hit "$(cat "$W/profile.json")" || return 0
  {
    echo "# perf: stash serving one kept-alive connection on the hot key (bench/run.sh)"
    perf report -i "$W/perf.data" --stdio --no-children --sort dso,sym -g caller,0.5,callee \
      --percent-limit 1 2>/dev/null | grep -v '^$' | head -200
  } >"$OUT/profile-hit.txt"
}

wrk_rps() {  # PORT CONNS: one wrk run; prints a JSON object
  local t=$(($2 < 2 ? 1 : 2))
  wrk -t"$t" -c"$2" -d"${WRK_SECS}s" --latency -H "$TOKEN_H" "http://127.0.0.1:$1$HOT_PATH" \
    >"$W/wrk.out" 2>&1 || { say "wrk failed: $(tail -3 "$W/wrk.out")"; return 1; }
  $PY "$ROOT/bench/report.py" --parse-wrk "$W/wrk.out"
}

# The previous design of the local API, paired with this one in the throughput section: a stash
# binary (BENCH_PREV_STASH), or one built here from a git revision (BENCH_PREV_REV, e.g. the
# commit before a change to the server).  Unset: not measured.
prev_stash() {
  if [ -n "${BENCH_PREV_STASH:-}" ]; then
    echo "$BENCH_PREV_STASH"
  elif [ -n "${BENCH_PREV_REV:-}" ]; then
    mkdir -p "$W/prev" &&
      git -C "$ROOT" archive "$BENCH_PREV_REV" | tar -x -C "$W/prev" &&
      make -C "$W/prev" --no-print-directory -j2 build/extensions/stash >"$W/prev-build.log" 2>&1 &&
      echo "$W/prev/build/extensions/stash"
  fi
}

# wrk_stash VARIANT CONNS: one wrk run against the running stash of that build.
wrk_stash() {
  local port=$STASH_PORT
  [ "$1" = system ] && port=$SYS_PORT
  record throughput "stash_c$2$(sfx_of "$1")" "$(wrk_rps "$port" "$2")"
}

# cost_count VARIANT: what each build's process spends per request while 8 callers loop on
# the hot key (a fixed count, so the figures are per request, not per second: the load of the
# machine leaves the counts alone), counted by perf on the running process: CPU time, context
# switches, page faults, and the system calls that say where a process waits or goes to the
# kernel for memory (futex: a lock contended; mmap/munmap/madvise: the allocator taking or
# returning memory, each new page then a fault).  Skipped when perf is missing or not allowed.
cost_count() {
  local port=$STASH_PORT pid=$STASH_PID sfx n=$((N_HIT * 2)) perf_pid
  sfx=$(sfx_of "$1")
  [ "$1" = system ] && { port=$SYS_PORT pid=$SYS_PID; }
  perf stat -x, -o "$W/perfstat.txt" -e task-clock,context-switches,page-faults \
    -e syscalls:sys_enter_futex \
    -e syscalls:sys_enter_mmap,syscalls:sys_enter_munmap,syscalls:sys_enter_madvise \
    -p "$pid" >"$W/perfstat.log" 2>&1 &
  perf_pid=$!
  sleep 1 # attached before the first request, even on a loaded machine
  hit "$port" "$HOT_PATH" -c 8 -n "$((n / 8))" -w 10 >"$W/cost-hit.json" ||
    { kill -INT "$perf_pid"; wait "$perf_pid"; return 1; }
  kill -INT "$perf_pid"
  wait "$perf_pid"
  record throughput "cost_c8$sfx" "$($PY - "$W/perfstat.txt" "$W/cost-hit.json" <<'PY'
import json, sys
hit = json.load(open(sys.argv[2]))
n = hit["requests"] + 8 * 10
names = {"task-clock": "cpu_us", "context-switches": "ctxsw", "page-faults": "faults",
         "syscalls:sys_enter_futex": "futex",
         "syscalls:sys_enter_mmap": "mmap", "syscalls:sys_enter_munmap": "munmap",
         "syscalls:sys_enter_madvise": "madvise"}
out = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and f[2] in names and f[0] not in ("", "<not counted>", "<not supported>"):
        v = float(f[0]) * (1000 if f[2] == "task-clock" else 1)  # task-clock is in ms
        out[names[f[2]] + "_per_req"] = round(v / n, 4)
if out:
    out["requests"] = n
    print(json.dumps(out))
PY
)"
}

# cost_profile VARIANT: a CPU profile of the same work by symbol, grouped (the allocator, locks,
# memcpy/memset, the kernel, the rest), with the top symbols in $OUT/profile-c8[_system].txt.
# The callers start once perf has attached (a loaded machine can take a while to start it) and
# stop before it does; a profile without samples is left out, not recorded as zeros.
cost_profile() {
  local port=$STASH_PORT pid=$STASH_PID sfx perf_pid
  sfx=$(sfx_of "$1")
  [ "$1" = system ] && { port=$SYS_PORT pid=$SYS_PID; }
  rm -f "$W/perf-c8.data"
  perf record -F 1999 -o "$W/perf-c8.data" -p "$pid" -- sleep 5 >"$W/perf.log" 2>&1 &
  perf_pid=$!
  sleep 1
  hit "$port" "$HOT_PATH" -c 8 -n 1000000 -w 10 --max-ms 3000 >/dev/null
  wait "$perf_pid" || { say "perf record ($1): $(tail -1 "$W/perf.log")"; return 0; }
  perf report -i "$W/perf-c8.data" --stdio --no-children --sort sym 2>/dev/null >"$W/perf-c8.txt"
  grep -q '%' "$W/perf-c8.txt" || { say "perf record ($1): no samples"; return 0; }
  record throughput "profile_c8$sfx" "$($PY - "$W/perf-c8.txt" <<'PY'
import json, re, sys
groups = [("alloc", r"malloc|free|calloc|realloc|alloc_slot|alloc_group|get_meta|enframe|"
                    r"try_avail|_int_|tcache|get_stride|size_to_class|arena"),
          ("locks", r"^__lock$|^__unlock$|mutex|^__wait$|^__wake|futex|lll_|pthread_cond|"
                    r"pthread_once"),
          ("memcpy_memset", r"mem(cpy|set|move)")]
# In the kernel: cross-CPU TLB flushes (an munmap or mprotect in a process whose threads run on
# other CPUs interrupts them), and the memory map's own work (faults, mmap/munmap, its lock).
kgroups = [("kernel_tlb_ipi", r"smp_call_function|flush_tlb|call_function"),
           ("kernel_mm", r"page_fault|clear_page|rwsem|mmap|unmap|vma|zap_|anonymous_page|"
                         r"handle_mm_fault|folio|alloc_pages|free_pages|lru")]
out = {"kernel_pct": 0.0, "kernel_tlb_ipi_pct": 0.0, "kernel_mm_pct": 0.0, "user_other_pct": 0.0}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    if kind == "k":
        out["kernel_pct"] += pct
        for g, rx in kgroups:
            if re.search(rx, sym):
                out[g + "_pct"] += pct
                break
        continue
    for g, rx in groups:
        if re.search(rx, sym):
            out[g + "_pct"] = out.get(g + "_pct", 0.0) + pct
            break
    else:
        out["user_other_pct"] += pct
print(json.dumps({k: round(v, 2) for k, v in out.items()}))
PY
)" || return 0
  {
    echo "# perf: the $1 build serving 8 kept-alive connections on the hot key (bench/run.sh)"
    grep -v '^#' "$W/perf-c8.txt" | grep -v '^$' | head -40 || true
  } >"$OUT/profile-c8$sfx.txt"
}

sec_throughput() {
  local r c m v prev prev_port= prev_pid=
  prev=$(prev_stash) || { WHY="BENCH_PREV_REV did not build: $(tail -3 "$W/prev-build.log")"; return 1; }
  if [ -n "$prev" ]; then
    STASH_BIN=$prev start_stash stash-prev || { WHY="the previous stash did not start"; return 1; }
    prev_port=$STASH_PORT
    prev_pid=$STASH_PID
  fi
  if have_system; then
    STASH_BIN=$SYSTEM_STASH start_stash stash-system ||
      { WHY="the system build did not start"; return 1; }
    SYS_PID=$STASH_PID SYS_PORT=$STASH_PORT
    curl -s -H "$TOKEN_H" "http://127.0.0.1:$SYS_PORT$HOT_PATH" >/dev/null
  fi
  start_stash stash || { WHY="stash did not start"; return 1; }
  curl -s -H "$TOKEN_H" "http://127.0.0.1:$STASH_PORT$HOT_PATH" >"$W/hot-body.json"
  start_floors "$W/hot-body.json" || { WHY="floor did not start"; return 1; }
  for ((r = 0; r < TP_ROUNDS; r++)); do
    for c in $WRK_CONNS; do
      # The two builds back to back (their order alternating by round), then the floor.
      for v in $(variants "$r"); do wrk_stash "$v" "$c" || { WHY="wrk failed"; return 1; }; done
      if [ -n "$prev_port" ]; then
        record throughput "stash_prev_c$c" "$(wrk_rps "$prev_port" "$c")" ||
          { WHY="wrk failed"; return 1; }
      fi
      for m in $FLOOR_MODES; do
        record throughput "floor_${m}_c$c" "$(wrk_rps "${FLOOR_PORTS[$m]}" "$c")" ||
          { WHY="wrk failed"; return 1; }
      done
    done
  done
  stop_floors
  # Costs per request: COST_ROUNDS rounds, the builds back to back in each (order alternating).
  if command -v perf >/dev/null && [ "$QUICK" = 0 ]; then
    for ((r = 0; r < COST_ROUNDS; r++)); do
      for v in $(variants "$r"); do cost_count "$v" || say "no per-request costs for $v"; done
    done
    for v in $(variants 0); do cost_profile "$v"; done
  fi
  stop "$STASH_PID"
  [ -z "$prev_pid" ] || stop "$prev_pid"
  have_system && stop "$SYS_PID"
  return 0
}

# The shipped build against the system build under the same load at the same time: one client
# (bench/bench_ab.c) with C kept-alive connections to each, loading one build at a time and
# switching every AB_SLICE_MS in a balanced order (A B B A, B A A B, ...), so the machine's other
# work falls on both alike.  Run one after the other, two wrk runs a second apart differ by more
# than the builds do on this shared VM.  AB_ROUNDS rounds of AB_SECS seconds at 1, 8 and 64
# connections; which build is "A" alternates by round.  Each round records, per build, the
# requests per second it served while it had the load and the p50/p99 of its answers, and the
# median of the per-group ratios (shipped/system) with its 95 % interval.
#
# With 8 and 64 connections the client and the server compete for the two CPUs, and how the
# scheduler shares them out drifts from round to round by more than the builds differ.  So
# there, when the machine has two CPUs or more, both builds are started on CPU 0 (their threads
# stay there) and the client runs on CPU 1: the figure is what a build serves on one CPU.  With
# one connection (a function's own pattern: one request at a time) nothing is pinned, and those
# rounds run first, on builds that have never been pinned; there are AB_C1_ROUNDS of them: at one
# connection the builds are within a few percent of each other and single rounds spread by
# +-5 %, so it takes more rounds to bound the median closely.  libmicrohttpd's two threads each
# accept connections, so connections are split between them (and so between CPUs) at random,
# and the split sets the rate (8 connections, 6 rounds of one split each: 0.90 to 1.21 x); each
# connection is replaced by a new one every AB_RECONNECT_MS, so a round sees many splits.  A
# connection is still kept alive for thousands of requests, and connecting is not timed.
AB_SLICE_MS=${AB_SLICE_MS:-10}
AB_RECONNECT_MS=${AB_RECONNECT_MS:-500}
ab_round() {  # ROUND CONNS [CLIENT-WRAPPER...]
  local r=$1 c=$2 a=$STASH_PORT b=$SYS_PORT flip=0 pinned=0
  shift 2
  (($# > 0)) && pinned=1
  if ((r % 2 == 1)); then a=$SYS_PORT b=$STASH_PORT flip=1; fi
  "$@" "$AB" --port-a "$a" --port-b "$b" --path "$HOT_PATH" -H "$TOKEN_H" -c "$c" -t 1 \
    --secs "$AB_SECS" --slice-ms "$AB_SLICE_MS" --warm-ms 500 \
    --reconnect-ms "$AB_RECONNECT_MS" >"$W/ab.json" 2>"$W/ab.err" ||
    { WHY="bench_ab failed: $(tail -1 "$W/ab.err")"; return 1; }
  $PY - "$W/ab.json" "$flip" "$pinned" >"$W/ab.split" <<'PY' || { WHY="no result"; return 1; }
import json, sys
d = json.load(open(sys.argv[1]))
flip = sys.argv[2] == "1"
ship, system = (d["b"], d["a"]) if flip else (d["a"], d["b"])
g = d["group_ratio"]
# The per-group ratio is A/B; as shipped/system it is inverted when the system build was A.
gr = {k: round(1 / v, 4) for k, v in g.items()} if flip else g
ship = dict(ship, group_ratio=gr["median"], group_ratio_lo95=min(gr["lo95"], gr["hi95"]),
            group_ratio_hi95=max(gr["lo95"], gr["hi95"]), groups=d["groups"],
            empty_groups=d["empty_groups"],
            pinned=int(sys.argv[3]))
print(json.dumps(ship))
print(json.dumps(system))
PY
  record paired "ab_c$c" "$(sed -n 1p "$W/ab.split")" &&
    record paired "ab_c${c}_system" "$(sed -n 2p "$W/ab.split")"
}

# ab_builds [WRAPPER...]: starts both builds (through WRAPPER, e.g. taskset -c 0) and warms the
# hot key in each; sets STASH_PID/STASH_PORT and SYS_PID/SYS_PORT.
ab_builds() {
  STASH_BIN=$SYSTEM_STASH start_stash stash-system "$@" ||
    { WHY="the system build did not start"; return 1; }
  SYS_PID=$STASH_PID SYS_PORT=$STASH_PORT
  start_stash stash "$@" || { WHY="stash did not start"; return 1; }
  curl -s -o /dev/null -H "$TOKEN_H" "http://127.0.0.1:$SYS_PORT$HOT_PATH"
  curl -s -o /dev/null -H "$TOKEN_H" "http://127.0.0.1:$STASH_PORT$HOT_PATH"
}

sec_paired() {
  local r c pin=() cpin=()
  [ -x "$AB" ] || { WHY="$AB is not built"; return 1; }
  if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    pin=(taskset -c 0) cpin=(taskset -c 1)
  fi
  ab_builds || return 1
  for ((r = 0; r < AB_C1_ROUNDS; r++)); do ab_round "$r" 1 || return 1; done
  stop "$STASH_PID"
  stop "$SYS_PID"
  ab_builds "${pin[@]}" || return 1
  for ((r = 0; r < AB_ROUNDS; r++)); do
    for c in $WRK_CONNS; do
      [ "$c" = 1 ] || ab_round "$r" "$c" "${cpin[@]}" || return 1
    done
  done
  stop "$STASH_PID"
  stop "$SYS_PID"
  return 0
}

# Refresh-ahead: one secret read steadily across TTL boundaries, by a stash with refresh-ahead
# (STASH_REFRESH_AHEAD=1) and one without, against their own fake-aws adding RA_LATENCY_MS to
# every call.  TTL RA_TTL_S; RA_READERS callers read the key every RA_PERIOD_MS for RA_TTLS
# TTLs (bench/steady_reader.py), so each caller meets each expiry once: without refresh-ahead
# one read in (RA_TTL_S * 1000 / RA_PERIOD_MS) = 50 waits for upstream, which is what p99 sees.
# With it the refresh starts at 90-95 % of the TTL, at most 100 ms before the expiry, and its
# RA_LATENCY_MS call is back before it.  The upstream latency is 50 ms so that a wait stands
# clear of the reader's own noise on a busy machine (a few ms).  RA_ROUNDS rounds, the two
# back to back in each (order alternating); the report takes the per-round ratio on/off, then
# the median.
RA_TTL_S=2 RA_LATENCY_MS=50 RA_READERS=4 RA_PERIOD_MS=40
ra_read() {  # PORT: one steady run; prints a JSON object
  $PY "$ROOT/bench/steady_reader.py" --port "$1" --path "$HOT_PATH" --token "$AWS_SESSION_TOKEN" \
    --readers "$RA_READERS" --period-ms "$RA_PERIOD_MS" --seconds "$((RA_TTLS * RA_TTL_S))" \
    --slow-ms "$((RA_LATENCY_MS / 2))"
}
sec_refresh_ahead() {
  local r v fake_pid fake_url on_port on_pid off_port off_pid saved=$FAKE_URL
  start fake-ra "$FAKE" --port 0 --data "$W/data.json" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" --latency-ms "$RA_LATENCY_MS" ||
    { WHY="fake-aws did not start"; return 1; }
  fake_pid=$PID
  fake_url=http://127.0.0.1:$(wait_listening fake-ra) || { WHY="fake-aws did not listen"; return 1; }
  FAKE_URL=$fake_url
  start_stash stash-ra-on SECRETS_MANAGER_TTL="$RA_TTL_S" STASH_REFRESH_AHEAD=1 ||
    { FAKE_URL=$saved; WHY="stash did not start"; return 1; }
  on_port=$STASH_PORT on_pid=$STASH_PID
  start_stash stash-ra-off SECRETS_MANAGER_TTL="$RA_TTL_S" STASH_REFRESH_AHEAD=0 ||
    { FAKE_URL=$saved; WHY="stash did not start"; return 1; }
  off_port=$STASH_PORT off_pid=$STASH_PID
  FAKE_URL=$saved
  for ((r = 0; r < RA_ROUNDS; r++)); do
    for v in $( ((r % 2 == 0)) && echo "on off" || echo "off on"); do
      local port=$on_port
      [ "$v" = off ] && port=$off_port
      # The value expired while the other stash was measured: fetched again first, so the run
      # starts on a fresh value and only its own expiries are in it.
      curl -s -o /dev/null -H "$TOKEN_H" "http://127.0.0.1:$port$HOT_PATH"
      record refresh_ahead "ahead_$v" "$(ra_read "$port")" || { WHY="steady reader failed"; return 1; }
    done
  done
  stop "$on_pid"
  stop "$off_pid"
  stop "$fake_pid"
}

sec_miss_path() {
  local r
  # TTL 0: every request goes upstream, so each one is a miss.
  start_stash stash SECRETS_MANAGER_TTL=0 || { WHY="stash did not start"; return 1; }
  # The direct call: the same GetSecretValue, signed once (botocore) and replayed over one
  # kept-alive connection by the same C client: the upstream round trip with no client cost.
  $PY "$ROOT/bench/sign_request.py" --endpoint "$FAKE_URL" --secret "$HOT_SECRET" \
    --headers "$W/direct.headers" --body "$W/direct.body" || { WHY="signing failed"; return 1; }
  local -a dh=()
  while IFS= read -r h; do dh+=(-H "$h"); done <"$W/direct.headers"
  for ((r = 0; r < REPEATS; r++)); do
    record miss_path direct "$("$HIT" --port "$FAKE_PORT" --path / --method POST \
      --body-file "$W/direct.body" "${dh[@]}" --expect 200 -n "$N_MISS" -w 50 --max-ms 60000)" ||
      { WHY="direct call failed"; return 1; }
    record miss_path stash_miss "$(hit "$STASH_PORT" "$HOT_PATH" -n "$N_MISS" -w 50)" ||
      { WHY="stash miss failed"; return 1; }
  done
  stop "$STASH_PID"
}

# exec_first EXPECT [TOKEN_HEADER]: bench_hit's JSON: ms from fork+exec of stash ($STASH_BIN when
# set, else $STASH) to the first EXPECT answer, and its page faults and peak RSS at that moment.
exec_first() {
  local -a h=()
  [ -n "${2:-}" ] && h=(-H "$2")
  STASH_PORT=$(free_port)
  env -u AWS_LAMBDA_RUNTIME_API PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$STASH_PORT" \
    AWS_ENDPOINT_URL_SECRETS_MANAGER="$FAKE_URL" AWS_ENDPOINT_URL_SSM="$FAKE_URL" \
    PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=warn STASH_METRICS_MODE=off \
    "$HIT" --exec-first --port "$STASH_PORT" --path "$HOT_PATH" "${h[@]}" --expect "$1" \
    --max-ms 5000 -- "${STASH_BIN:-$STASH}" 2>"$W/exec.err"
}

is_pie() {  # BINARY: position-independent (ELF type DYN), so it is relocated at every start
  LC_ALL=C readelf -h "$1" 2>/dev/null | grep -q 'Type:.*DYN'
}

jfield() {  # JSON FIELD: one number from a JSON object
  $PY -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

is_static() {  # BINARY: no program interpreter, so no dynamic loader and no shared library
  ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'
}

# startup_instructions VARIANT: where the instructions from exec to the first answer go, counted
# by callgrind (repeatable, whatever the load): that build under valgrind answers one /ping and
# is stopped.  Millions of instructions: the loader (glibc's ld.so mapping and relocating the
# libraries, _dl_start; a static PIE relocating itself, what musl's _start_c does before
# __dls2), the constructors (_dl_init; musl's libc_start_init), curl_global_init, the rest of
# main (configuration, cache, listeners), exit (the libraries' atexit handlers: OpenSSL's
# cleanup), and the threads (listeners and the request: glibc's start_thread, musl's start).
# A part whose function is not in the profile is left out, not guessed.  Skipped without
# valgrind.
startup_instructions() {
  command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
    { say "valgrind not found: no instruction counts"; return 0; }
  local port pid i
  port=$(free_port)
  env -u AWS_LAMBDA_RUNTIME_API PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" \
    AWS_ENDPOINT_URL_SECRETS_MANAGER="$FAKE_URL" AWS_ENDPOINT_URL_SSM="$FAKE_URL" \
    PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=warn STASH_METRICS_MODE=off \
    valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.out" "$(bin_of "$1")" \
    >"$W/callgrind.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 3000; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$port/ping" && break
    sleep 0.01
  done
  stop "$pid"
  callgrind_annotate --inclusive=yes --threshold=100 "$W/callgrind.out" 2>/dev/null | $PY -c '
import json, re, sys
inc, total = {}, None
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+PROGRAM TOTALS", line)
    if m:
        total = int(m.group(1).replace(",", ""))
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:([\w.]+) \[", line)
    if m and m.group(2) not in inc:
        inc[m.group(2)] = int(m.group(1).replace(",", ""))
M = 1e6
out = {}
if total:
    out["total_minstr"] = round(total / M, 2)
if "_dl_start" in inc:                       # glibc: the dynamic loader
    out["loader_minstr"] = round(inc["_dl_start"] / M, 2)
elif "_start_c" in inc and "__dls2" in inc:  # musl static PIE: self-relocation
    out["loader_minstr"] = round((inc["_start_c"] - inc["__dls2"]) / M, 2)
for name, key in (("_dl_init", "constructors"), ("libc_start_init", "constructors"),
                  ("curl_global_init", "curl_global_init"), ("exit", "exit"),
                  ("start_thread", "threads"), ("start", "threads")):
    if name in inc and key + "_minstr" not in out:
        out[key + "_minstr"] = round(inc[name] / M, 2)
if "main" in inc:
    out["main_rest_minstr"] = round((inc["main"] - inc.get("curl_global_init", 0)) / M, 2)
if out:
    print(json.dumps(out))' >"$W/startup.json"
  [ -s "$W/startup.json" ] || { say "callgrind: nothing parsed for $1"; return 0; }
  record footprint "startup_instructions$(sfx_of "$1")" "$(cat "$W/startup.json")" || return 0
}

# footprint_rss VARIANT: that build's peak RSS idle and with 1000 x 4 KB cached, its resident set
# by mapping at both points, and the size of one cached answer.
footprint_rss() {
  local sfx idle anon file full full_anon answer
  sfx=$(sfx_of "$1")
  STASH_BIN=$(bin_of "$1") start_stash "stash$sfx" || { WHY="stash ($1) did not start"; return 1; }
  sleep 0.2
  idle=$(rss_kb "$STASH_PID" VmHWM)
  anon=$(rss_kb "$STASH_PID" RssAnon)
  file=$(rss_kb "$STASH_PID" RssFile)
  record footprint "rss_by_mapping_idle$sfx" "$($PY "$ROOT/bench/smaps.py" "$STASH_PID")"
  warm "$STASH_PORT" 1000 || { WHY="warming 1000 keys failed ($1)"; return 1; }
  full=$(rss_kb "$STASH_PID" VmHWM)
  full_anon=$(rss_kb "$STASH_PID" RssAnon)
  # The size of one cached answer (what the cache stores per key: the JSON stash serves).
  answer=$(curl -s -H "$TOKEN_H" "http://127.0.0.1:$STASH_PORT$HOT_PATH" | wc -c)
  record footprint "rss_by_mapping_1000x4k$sfx" "$($PY "$ROOT/bench/smaps.py" "$STASH_PID")"
  stop "$STASH_PID"
  RSS_JSON="\"idle_kb\":$idle,\"idle_anon_kb\":$anon,\"idle_file_kb\":$file"
  RSS_JSON+=",\"cached_1000x4k_kb\":$full,\"cached_1000x4k_anon_kb\":$full_anon"
  RSS_JSON+=",\"answer_bytes\":$answer"
}

# footprint_exec VARIANT: exec to the first answer to a request without the token (401: routed
# and checked, nothing upstream), and to the first 200 for a secret (a miss: one fake-aws call).
footprint_exec() {
  local served secret
  served=$(STASH_BIN=$(bin_of "$1") exec_first 401) ||
    { WHY="exec to first 401 ($1): $(tail -1 "$W/exec.err")"; return 1; }
  secret=$(STASH_BIN=$(bin_of "$1") exec_first 200 "$TOKEN_H") ||
    { WHY="exec to first secret ($1): $(tail -1 "$W/exec.err")"; return 1; }
  EXEC_JSON="\"exec_to_first_ms\":$(jfield "$served" exec_to_first_ms)"
  EXEC_JSON+=",\"faults_to_first\":$(jfield "$served" minflt)"
  EXEC_JSON+=",\"hwm_at_first_kb\":$(jfield "$served" hwm_kb)"
  EXEC_JSON+=",\"exec_to_first_secret_ms\":$(jfield "$secret" exec_to_first_ms)"
}

# binary_sizes VARIANT: the build's size unstripped and stripped; for the shipped build, the
# layer zips too when `make layer` has written them.
binary_sizes() {
  local bin sfx z json
  bin=$(bin_of "$1") sfx=$(sfx_of "$1")
  strip -o "$W/stash.stripped" "$bin"
  json="\"stripped_bytes\":$(stat -c %s "$W/stash.stripped")"
  json+=",\"unstripped_bytes\":$(stat -c %s "$bin")"
  json+=",\"static\":$(is_static "$bin" && echo 1 || echo 0)"
  json+=",\"pie\":$(is_pie "$bin" && echo 1 || echo 0)"
  if [ -z "$sfx" ]; then
    for z in "$LAYER_DIR"/stash-*.zip; do
      [ -f "$z" ] || continue
      z=${z##*/stash-}
      json+=",\"layer_${z%.zip}_zip_bytes\":$(stat -c %s "$LAYER_DIR/stash-$z")"
    done
  fi
  record footprint "binary$sfx" "{$json}"
}

sec_footprint() {
  local r v floor_kb libs
  declare -A rss_of exec_of
  head -c 4385 /dev/zero | tr '\0' x >"$W/floor-body"
  for ((r = 0; r < FP_ROUNDS; r++)); do
    # Each build in turn (the order alternating by round): memory first, then start-up.
    for v in $(variants "$r"); do
      footprint_rss "$v" || return 1
      rss_of[$v]=$RSS_JSON
    done
    for v in $(variants "$r"); do
      footprint_exec "$v" || return 1
      exec_of[$v]=$EXEC_JSON
    done
    # For scale: the floor (libmicrohttpd alone, no libcurl/OpenSSL/cJSON, linked against the
    # system's shared libraries) idle.
    start floor-rss "$FLOOR" --port 0 --body-file "$W/floor-body" --mode thread
    wait_listening floor-rss >/dev/null
    sleep 0.1
    floor_kb=$(rss_kb "$PID" VmHWM)
    stop "$PID"
    # What any process linked against the system build's shared libraries pays before main (the
    # floor binary is linked like it; started with a bad option it loads everything and exits
    # at once): its time from exec to exit; and, with --loaded, its resident set and page faults
    # as main() begins, and after curl_global_init as stash calls it.  And the cost of one page
    # fault on this machine now (anonymous memory, first touch): start-up is mostly faults, and
    # their price varies with the load of the VM.
    libs=$($PY - "$FLOOR" <<'PY'
import json, mmap, subprocess, sys, time
t, rss, flt, crss, cflt = [], [], [], [], []
def loaded(*extra):
    return json.loads(subprocess.run([sys.argv[1], "--loaded", *extra], capture_output=True,
                                     text=True, check=True).stdout)
for _ in range(7):
    t0 = time.perf_counter()
    subprocess.run([sys.argv[1], "--bad-option"], stderr=subprocess.DEVNULL)
    t.append((time.perf_counter() - t0) * 1000)
    at_main, after_curl = loaded(), loaded("curl")
    rss.append(at_main["rss_kb"])
    flt.append(at_main["minflt"])
    crss.append(after_curl["rss_kb"])
    cflt.append(after_curl["minflt"])
pages = 4096
m = mmap.mmap(-1, pages * 4096)
t0 = time.perf_counter()
for i in range(0, pages * 4096, 4096):
    m[i] = 1
fault_us = (time.perf_counter() - t0) * 1e6 / pages
med = lambda v: sorted(v)[len(v) // 2]
print(json.dumps({"exec_to_exit_same_libs_ms": round(med(t), 3),
                  "same_libs_rss_kb": med(rss), "same_libs_minflt": med(flt),
                  "same_libs_curl_init_rss_kb": med(crss),
                  "same_libs_curl_init_minflt": med(cflt),
                  "page_fault_us": round(fault_us, 2)}))
PY
)
    # The shipped build's records keep their names (rss, exec_first); the floor's figures go
    # with the build they describe: a dynamically linked one (the system build, or the shipped
    # one when it is that).  page_fault_us goes with both.
    for v in $(variants "$r"); do
      record footprint "rss$(sfx_of "$v")" "{${rss_of[$v]},\"floor_idle_kb\":$floor_kb}"
      if is_static "$(bin_of "$v")"; then
        record footprint "exec_first$(sfx_of "$v")" \
          "{${exec_of[$v]},\"page_fault_us\":$(jfield "$libs" page_fault_us)}"
      else
        record footprint "exec_first$(sfx_of "$v")" "{${exec_of[$v]},${libs#\{}"
      fi
    done
  done
  for v in $(variants 0); do
    [ "$QUICK" = 1 ] || startup_instructions "$v"
    binary_sizes "$v"
  done
}

sec_scaling() {
  local k c r n out
  for k in $KEYS_SCALE; do
    for ((r = 0; r < (QUICK ? 1 : 3); r++)); do
      start_stash stash || { WHY="stash did not start"; return 1; }
      warm "$STASH_PORT" "$k" || { WHY="warming $k keys failed"; return 1; }
      out=$(hit "$STASH_PORT" "$KEY_PATH" --keys "$k" -n "$N_SCALE" -w 200) || return 1
      record scaling "keys_$k" "${out%\}},\"rss_kb\":$(rss_kb "$STASH_PID" VmRSS)}"
      stop "$STASH_PID"
    done
  done
  start_stash stash || { WHY="stash did not start"; return 1; }
  curl -s -H "$TOKEN_H" "http://127.0.0.1:$STASH_PORT$HOT_PATH" >"$W/hot-body.json"
  FLOOR_MODES=pool start_floors "$W/hot-body.json" || { WHY="floor did not start"; return 1; }
  for c in $CONCS; do
    n=$((N_SCALE / c < 100 ? 100 : N_SCALE / c))
    for ((r = 0; r < (QUICK ? 1 : 3); r++)); do
      record scaling "stash_conc_$c" "$(hit "$STASH_PORT" "$HOT_PATH" -c "$c" -n "$n" -w 20)" ||
        return 1
      record scaling "floor_conc_$c" "$(hit "${FLOOR_PORTS[pool]}" "$HOT_PATH" -c "$c" -n "$n" -w 20)" ||
        return 1
    done
  done
  stop_floors
  stop "$STASH_PID"
}

# --- lambda-sim sections ------------------------------------------------------------------------
# The published comparisons (TTL under load, cold vs warm, prefetch) are not here: `make
# reproduce` (bench/reproduce.py) reruns them in full, beside the published figures.

# start_sim NAME EXTDIR FUNCTION_FILE MAX_ENVS [K=V...]: lambda-sim running FUNCTION_FILE under the
# shim, stash as its extension when EXTDIR holds it; sets SIM_PID, SIM_PORT, SIM_LOGS.
start_sim() {
  local name=$1 ext=$2 fn=$3 envs=$4 kv
  shift 4
  local -a envargs=(--env "AWS_REGION=$AWS_REGION" --env "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
    --env "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    --env "AWS_ENDPOINT_URL_SECRETS_MANAGER=$FAKE_URL" --env "AWS_ENDPOINT_URL_SSM=$FAKE_URL"
    --env "SECRET_ID=$HOT_SECRET" --env "PARAM_NAME=/bench/param-0"
    --env "STASH_NODE_DIR=$NODE_DIR")
  for kv in "$@"; do envargs+=(--env "$kv"); done
  SIM_LOGS=$W/logs-$name
  rm -rf "$SIM_LOGS"
  mkdir -p "$SIM_LOGS"
  start "$name" "$SIM" --extensions "$ext" --function "node $FUNCS/runtime.mjs $FUNCS/$fn" \
    "${envargs[@]}" --memory 128 --timeout 10 --max-envs "$envs" --logs "$SIM_LOGS" --port 0
  SIM_PID=$PID
  SIM_PORT=$(wait_listening "$name")
}

INVOKE_PATH=/2015-03-31/functions/function/invocations

# invoke BODY: one invoke through lambda-sim; prints the function's answer.  An environment is
# busy until its extensions call next after the response, so an invoke sent right after another
# may get 429 (all environments busy): it is retried (at most 200 times 10 ms) so that it reaches
# the same, now idle, environment, as a later invoke would on Lambda.
invoke() {
  local i code
  for ((i = 0; i < 200; i++)); do
    code=$(curl -s --max-time 30 -o "$W/invoke.out" -w '%{http_code}' -X POST -d "$1" \
      "http://127.0.0.1:$SIM_PORT$INVOKE_PATH")
    if [ "$code" = 200 ]; then
      cat "$W/invoke.out"
      return 0
    fi
    [ "$code" = 429 ] || break
    sleep 0.01
  done
  say "invoke answered $code: $(head -c 200 "$W/invoke.out")"
  return 1
}

ext_dirs() {  # once per run: a copy can't be replaced while a stash started from it still exits
  mkdir -p "$W/ext-stash" "$W/ext-none"
  [ -e "$W/ext-stash/stash" ] || cp "$STASH" "$W/ext-stash/stash"
}

sec_lambda() {
  local r
  ext_dirs
  printf '{"work_ms":1}' >"$W/invoke.json"
  for ((r = 0; r < REPEATS; r++)); do
    for variant in stash direct; do
      if [ "$variant" = stash ]; then
        start_sim sim "$W/ext-stash" load-test.mjs 2 || { WHY="lambda-sim did not start"; return 1; }
      else
        start_sim sim "$W/ext-none" load-test-direct.mjs 2 ||
          { WHY="lambda-sim did not start"; return 1; }
      fi
      invoke '{"work_ms":0}' >/dev/null || { WHY="first invoke failed"; return 1; }
      "$HIT" --port "$SIM_PORT" --path "$INVOKE_PATH" --method POST --body-file "$W/invoke.json" \
        --expect 200 -n "$((N_LOAD / 4 + 10))" -w 0 --gap-us 2000 --max-ms 60000 \
        >"$W/invokes.json" ||
        { WHY="invokes failed"; return 1; }
      stop "$SIM_PID" # SHUTDOWN: the last reports are delivered and written
      record lambda "$variant" "$($PY "$ROOT/bench/report.py" --parse-logs "$SIM_LOGS" \
        --invokes "$W/invokes.json")" || { WHY="no REPORT lines in the logs"; return 1; }
    done
  done
}

section() {  # NAME NEEDS...: runs sec_NAME if every need holds
  local name=$1 need
  shift
  if [ -n "${BENCH_SECTIONS:-}" ] && [[ " $BENCH_SECTIONS " != *" $name "* ]]; then
    note "$name" skipped "not in BENCH_SECTIONS"
    return 0
  fi
  for need in "$@"; do
    if ! "$need"; then
      say "$name: skipped ($need is false)"
      note "$name" skipped "$need is false"
      return 0
    fi
  done
  say "$name ..."
  WHY=""
  local t0=$SECONDS
  if "sec_$name"; then
    note "$name" ok "$((SECONDS - t0)) s"
  else
    say "$name: FAILED: ${WHY:-see above}"
    note "$name" failed "${WHY:-a measurement failed}"
  fi
}

STASH_OK=0
stash_ok() { [ "$STASH_OK" = 1 ]; }

main() {
  STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # The load average as the run starts, for the report (report.py reads it from here).
  export BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
  gen_data || { say "cannot generate bench data"; exit 1; }
  if have_fake && start_fake; then
    stash_works && STASH_OK=1
  fi
  [ "$STASH_OK" = 1 ] && check_system
  [ "$STASH_OK" = 1 ] || say "stash is not functional here: stash sections are skipped"
  section hit_latency have_fake stash_ok
  section throughput have_fake stash_ok
  section paired have_fake stash_ok have_system
  section miss_path have_fake stash_ok
  section footprint have_fake stash_ok
  section scaling have_fake stash_ok
  section lambda have_fake have_sim stash_ok have_node_pkgs
  section refresh_ahead have_fake stash_ok
  $PY "$ROOT/bench/report.py" --raw "$RAW" --out "$OUT" --date "$STARTED" \
    --load "$(cut -d' ' -f1-3 /proc/loadavg)" $([ "$QUICK" = 1 ] && echo --quick)
}

main
