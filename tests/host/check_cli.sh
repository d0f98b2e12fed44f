#!/usr/bin/env bash
# ksphost's command line as a user meets it: the search order in --help, a clear
# message for -I without a directory.
#   check_cli.sh KSPHOST PLUGINDIR
set -uo pipefail
ksphost=$(realpath "$1") plugindir=$2
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
exit "$fail"
