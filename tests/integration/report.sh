#!/usr/bin/env bash
# dashboards/: the cost report (its HTML in headless Chromium too), the dashboard body, the queries
# and the alarms, checked with node's test runner against EMF lines from stash's own writer
# ($BUILD/tools/emf_sample).  Each node test becomes one ok/not ok line here, so tests/run.sh
# counts them.
source "$(dirname "$0")/lib.bash"
cd "$STASH_ROOT" || exit 1

check "emf_sample built ($BUILD/tools/emf_sample)" test -x "$BUILD/tools/emf_sample"
BUILD=$BUILD node --test --test-reporter=tap dashboards/test/ >"$T/tap" 2>&1
rc=$?
# Top-level results only ("ok N - name" at column 0); diagnostics of a failure are shown.
while IFS= read -r line; do
  case "$line" in
    "ok "*) check "${line#ok * - }" true ;;
    "not ok "*) check "${line#not ok * - }" false
                awk -v want="$line" '$0 == want {on = 1} on {print "#   " $0} on && /^  \.\.\.$/ {exit}' \
                  "$T/tap" | head -40 ;;
  esac
done <"$T/tap"
tests=$(grep -cE '^(not )?ok ' "$T/tap")
check "node --test ran tests and exited 0 (rc $rc)" test "$rc" = 0 -a "$tests" -gt 0
finish
