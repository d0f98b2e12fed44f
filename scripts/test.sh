#!/usr/bin/env bash
# Runs the whole test suite twice: a normal build, then under AddressSanitizer (with
# leak checking) and UndefinedBehaviorSanitizer.
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

run_suite() {
    local dir=$1; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
    meson compile -C "$dir"
    meson test -C "$dir" --print-errorlogs
}

run_suite build
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false
