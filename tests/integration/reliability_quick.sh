#!/usr/bin/env bash
# `make reliability` in QUICK mode (tests/reliability/harness.py --quick), under a minute:
# hostile requests over raw sockets, connection limits, a slow-loris and idle-connection flood
# with a well-behaved client measured, the upstream fault matrix, SIGTERM and SHUTDOWN with
# requests waiting, agent-mode EMF, and a short soak of the build under test (the ASan one under
# `make asan`).  The harness prints the "ok"/"not ok" lines and the "N passed, N failed" line.
set -uo pipefail
: "${STASH_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BUILD:=build}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 "$STASH_ROOT/tests/reliability/harness.py" --quick --build "$BUILD"
