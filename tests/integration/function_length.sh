#!/usr/bin/env bash
# Functions stay short enough to read in one screen: no function in the files below is longer
# than 80 lines (from its opening brace to its closing brace, both in column 0 as the house
# format puts them).  The check is first shown to catch a long function, so it cannot pass by
# finding no function at all.
source "$(dirname "$0")/lib.bash"
cd "$STASH_ROOT" || exit 1
MAX=80
FILES=(common/*.c cache/*.c telemetry/*.c extension/*.c)

# Prints "file:line name length" for every function longer than MAX lines.
long_functions() {
  awk -v max="$MAX" '
    FNR == 1 { sig = "" }
    /^[A-Za-z_].*\(/ { sig = $0; sigline = FNR }
    /^\{$/ { start = FNR }
    /^\}/ && start {
      n = FNR - start + 1
      if (n > max) {
        name = sig; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
        printf "%s:%d %s %d lines\n", FILENAME, sigline, name, n
      }
      start = 0
    }' "$@"
}

printf 'static void long_one(void)\n{\n' >"$T/long.c"
for ((i = 0; i < MAX; i++)); do echo "    x++;" >>"$T/long.c"; done
printf '}\n\nstatic int short_one(void)\n{\n    return 0;\n}\n' >>"$T/long.c"
expect_eq "the check finds an $((MAX + 2))-line function and only it" \
  "$T/long.c:1 long_one $((MAX + 2)) lines" "$(long_functions "$T/long.c")"
check "the files to check exist" ls "${FILES[@]}"
found=$(long_functions "${FILES[@]}")
[ -z "$found" ] || printf '%s\n' "$found" | sed 's/^/#   /'
expect_eq "no function over $MAX lines in ${FILES[*]}" "" "$found"
finish
