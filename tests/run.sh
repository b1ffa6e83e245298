#!/usr/bin/env bash
# Runs every test and ends with one summary line: "tests: N passed, N failed".
#   tests/run.sh BUILD [--unit-only]
# Unit tests are cmocka binaries in BUILD/tests; their counts are read from cmocka's own summary.
# Integration tests are tests/integration/*.sh; each prints "ok - ..." / "not ok - ..." lines and
# its own "N passed, N failed" line, which is read here.  A binary or script that dies without a
# summary counts as one failure.  VALGRIND=1 runs the unit binaries under valgrind.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
UNIT_ONLY=${2:-}
export BUILD STASH_ROOT=$PWD
passed=0
failed=0
failures=()

count() {  # name, output file, exit code
  local name=$1 out=$2 rc=$3 p f
  p=$(grep -aoE '^\[  PASSED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | awk '{s+=$1} END {if (NR) print s}')
  f=$(grep -aoE '^\[  FAILED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | awk '{s+=$1} END {if (NR) print s}')
  if [ -z "$p$f" ]; then
    p=$(grep -aoE '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 | awk '{print $1}')
    f=$(grep -aoE '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 | awk '{print $3}')
  fi
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1  # died, or failed without saying so
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$f" -gt 0 ] && failures+=("$name")
  printf '%-40s %3d passed, %d failed\n' "$name" "$p" "$f"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=unit/$(basename "$t")
  if [ -n "${VALGRIND:-}" ]; then
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      "$t" >"$tmp/out" 2>&1
  else
    "$t" >"$tmp/out" 2>&1
  fi
  rc=$?
  [ "$rc" -ne 0 ] && cat "$tmp/out"
  count "$name" "$tmp/out" "$rc"
done

if [ "$UNIT_ONLY" != --unit-only ]; then
  for s in tests/integration/*.sh; do
    [ -f "$s" ] || continue
    name=integration/$(basename "$s" .sh)
    # lean_*.sh test what ships (the static binaries and layer zips), which a DEPS=system
    # build (the sanitizer builds) does not make: said, and counted as neither.
    if [ "${STASH_DEPS:-lean}" = system ] && [[ $name == integration/lean_* ]]; then
      printf '%-40s not run: DEPS=system builds no layer\n' "$name"
      continue
    fi
    timeout 600 bash "$s" >"$tmp/out" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && cat "$tmp/out"
    count "$name" "$tmp/out" "$rc"
  done
fi

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
