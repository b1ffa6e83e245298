#!/usr/bin/env bash
# The repository stands alone: no tracked file points a reader (or a test) at something only the
# original authors had.  git grep over every tracked file must find none of:
#   - the private reference folder, or an absolute path into a home or work folder;
#   - private notes by name (research notes, not public documentation);
#   - a ticket number or the history of a change (who added a line, in which pass).
# Comments cite public documentation or state the fact; tests read their data from tests/data/.
# Each pattern is first shown to match a line that breaks the rule, so a pattern that can no
# longer match anything fails here instead of passing silently.  The patterns are written so that
# they do not match this file itself (e.g. "referenc[e]").
source "$(dirname "$0")/lib.bash"
cd "$STASH_ROOT" || exit 1

check "git lists the tracked files (a clone, not a copy)" git rev-parse --is-inside-work-tree

# rule DESCRIPTION REGEX BAD_LINE: REGEX (extended, case-insensitive) must match BAD_LINE and no
# line of any tracked file.
rule() {
  local desc=$1 re=$2 bad=$3 hits
  check "pattern of '$desc' matches a line that breaks it" \
    bash -c 'printf "%s\n" "$2" | grep -qiE -- "$1"' _ "$re" "$bad"
  hits=$(git grep -n -I -i -E -e "$re" -- . 2>&1 | head -20)
  [ -z "$hits" ] || printf '%s\n' "$hits" | sed 's/^/#   /'
  expect_eq "$desc" "" "$hits"
}

rule "no private reference folder" 'shared/referenc[e]' "see ../shared/refer""ence/x.json"
rule "no absolute path to a home or work folder" \
  '(^|[^A-Za-z0-9_.~-])/(work|home|Users|root)/[A-Za-z0-9_.-]' 'snprintf(p, n, "/wor''k/x/y")'
rule "no private notes cited by name" '(emf-cost-wir[e]|lambda-api[s][.]md|anchor[s][.]md)' \
  "(emf-cost-w""ire.md section 4.2)"
rule "no ticket numbers" '(^|[^a-z])issues? ?#?[0-9]' "/* Issue"" 4: requests during init */"
rule "no history of a change" 'hardening pas[s]' "Added by the hardening"" pass so"
finish
