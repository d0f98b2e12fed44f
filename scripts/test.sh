#!/usr/bin/env bash
# Runs the whole test suite three times: a normal build, then under AddressSanitizer
# (with leak checking) and UndefinedBehaviorSanitizer, then the core and the plugin
# under ThreadSanitizer (the loop thread and the script threads meet there), and last
# the libFuzzer targets over their seed corpus (clang only: SKIP without clang++).
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# run_suite DIR "SETUP OPTIONS" [SUITE ...]
run_suite() {
    local dir=$1 options=$2
    shift 2
    local suites=()
    for s in "$@"; do suites+=(--suite "$s"); done
    # shellcheck disable=SC2086  # options are words
    [ -f "$dir/build.ninja" ] || meson setup "$dir" $options
    meson compile -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" "${suites[@]}"
}

run_suite build ""
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite build-asan "-Db_sanitize=address,undefined -Db_lundef=false"
run_suite build-tsan "-Db_sanitize=thread -Db_lundef=false" core plugin

# Only what the fuzz targets need is built: the whole tree again would cost as much as the
# ASan build.
if command -v clang++ >/dev/null; then
    [ -f build-fuzz/build.ninja ] ||
        CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
    meson compile -C build-fuzz fuzz_address fuzz_plugin_args ksp_net
    meson test -C build-fuzz --no-rebuild --print-errorlogs --suite fuzz
else
    echo "fuzz: SKIP (no clang++; scripts/debian-packages.txt lists it)"
fi
