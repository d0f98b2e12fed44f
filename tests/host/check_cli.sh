#!/usr/bin/env bash
# ksphost's command line as a user meets it: the search order in --help, a clear
# message for -I without a directory, demo with any argument and with stdio closed.
#   check_cli.sh KSPHOST PLUGINDIR BUILT_PLUGIN_DIR
set -uo pipefail
ksphost=$(realpath "$1") plugindir=$2 built=$3
fail=0
expect() {  # expect WHAT TEXT OUTPUT
    case $3 in *"$2"*) ;; *) echo "FAIL: $1: expected '$2' in: $3"; fail=1 ;; esac
}

help=$("$ksphost" --help)
expect "--help states the search order" "the -I directories, in order; . (the current directory); $plugindir" "$help"
expect "--help names KSPATH last" 'then each directory of $KSPATH' "$help"
expect "--help lists serve" "serve [--port N]" "$help"
expect "serve --help says what SIGHUP does" "kill -HUP PID    reload net live" "$("$ksphost" serve --help)"

out=$("$ksphost" -I 2>&1); rc=$?
[ "$rc" = 2 ] || { echo "FAIL: -I alone exits $rc, not 2"; fail=1; }
expect "-I without a directory" "-I needs a directory after it" "$out"

# `.` is searched: a plugin in the current directory is found without -I.
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
out=$(cd "$dir" && KSPATH= "$ksphost" describe no_such_module 2>&1)
expect "the current directory is searched" "tried ./ksp_no_such_module.so" "$out"
expect "the plugin directory is searched" "$plugindir/ksp_no_such_module.so" "$out"
out=$("$ksphost" -I '' describe net 2>&1); rc=$?
[ "$rc" = 2 ] || { echo "FAIL: -I '' exits $rc, not 2 (it searched /)"; fail=1; }
expect "-I with an empty directory" "-I needs a directory, not an empty string" "$out"

# describe lists a base's method under the base only where the type does not define it.
out=$("$ksphost" -I "$built" describe net 2>&1)
expect "describe net: what SocketIO inherits" "inherited from io.BaseIO: printf
" "$out"$'\n'

# demo sends its arguments as they are, UTF-8 or not; a line break is refused, not lost.
out=$("$ksphost" -I "$built" demo $'caf\xe9' 2>&1); rc=$?
[ "$rc" = 0 ] || { echo "FAIL: demo with a Latin-1 argument exits $rc: $out"; fail=1; }
expect "demo answers a non-UTF-8 line" $'client < CAF\xe9' "$out"
expect "demo counts one line" "demo: 1 line exchanged" "$out"
out=$("$ksphost" -I "$built" demo $'a\nb' 2>&1); rc=$?
[ "$rc" = 2 ] || { echo "FAIL: demo with a line break exits $rc, not 2: $out"; fail=1; }
expect "demo refuses a line break" "argument 1 holds a line break" "$out"

# A process started with stdin and stdout closed (as by a supervisor): libuv's descriptors
# would take 0 and 1, and it aborts rather than close those.
"$ksphost" -I "$built" demo <&- >&-; rc=$?
[ "$rc" = 0 ] || { echo "FAIL: demo with stdin and stdout closed exits $rc"; fail=1; }
"$ksphost" -I "$built" describe net <&- >/dev/null; rc=$?
[ "$rc" = 0 ] || { echo "FAIL: describe net with stdin closed exits $rc"; fail=1; }
exit "$fail"
