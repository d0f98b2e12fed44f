#!/usr/bin/env bash
# A suite's test_list.txt must name exactly the cases its program has: a case missing
# from the list would never run under meson; a listed case the program lacks fails too.
#   check_test_list.sh LIST PROGRAM
set -euo pipefail
list=$1 program=$2
listed=$(grep -v '^#' "$list" | sed '/^[[:space:]]*$/d' | sort)
actual=$("$program" --list-test-cases --no-version | grep -v '^\[doctest\]' | grep -v '^====' | sort)
only_program=$(comm -13 <(echo "$listed") <(echo "$actual"))
only_list=$(comm -23 <(echo "$listed") <(echo "$actual"))
dupes=$(echo "$listed" | uniq -d)
status=0
[ -z "$only_program" ] || { echo "cases missing from $list (they would never run):"; echo "$only_program"; status=1; }
[ -z "$only_list" ] || { echo "listed in $list but not in $program:"; echo "$only_list"; status=1; }
[ -z "$dupes" ] || { echo "listed twice in $list:"; echo "$dupes"; status=1; }
[ "$status" = 1 ] || echo "$(echo "$listed" | wc -l) cases, list and program agree"
exit "$status"
