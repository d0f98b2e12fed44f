#!/usr/bin/env bash
# Runs one .ks script with the real kscript interpreter on the plugin freshly built in
# this build tree (never an installed copy). kscript returns its builtin `net` before it
# searches any folder, so the script runs as a user would run an unmodified `ks`:
#   LD_PRELOAD=<folder>/ksp_net_preload.so ks script.ks
# with <folder> a scratch copy of the install folder (ksp_net.so, ksm_net.so and the
# preload library side by side, as `meson install` lays them out). KSPATH names that
# folder's parent too, so a kscript built without its builtin net finds the plugin
# there; KSNET_KS_NO_PRELOAD=1 leaves the preload out to test exactly that.
#
#   run_script.sh KS REASON PLUGIN ADAPTER PRELOAD SANITIZE CC SCRIPT
# KS empty: no kscript was found (REASON says why): SKIP (exit 77), never a pass.
set -euo pipefail
ks=$1 reason=$2 plugin=$3 adapter=$4 preload=$5 sanitize=$6 cc=$7 script=$8

if [ -z "$ks" ]; then
    echo "SKIP: $reason"
    exit 77
fi
script=$(realpath "$script")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
folder=$scratch/kpm/net
mkdir -p "$folder" "$scratch/run"
cp "$plugin" "$adapter" "$preload" "$folder/"

preloads=$folder/ksp_net_preload.so
if [ "${KSNET_KS_NO_PRELOAD:-0}" = 1 ]; then
    preloads=
fi
# An ASan build: ks itself is not instrumented, so the ASan runtime must come first in
# the process (before the preload library that pulls in the instrumented plugin).
# Leak reports at exit would be kscript's (caught exceptions and os.thread objects are
# never freed; docs/kscript.md): leak detection is off, even when ASAN_OPTIONS (as
# scripts/test.sh sets it) turns it on, unless KSNET_KS_LEAKS=1; every other check stays on.
case $sanitize in
*address*)
    libasan=$("$cc" -print-file-name=libasan.so)
    preloads="$libasan${preloads:+ $preloads}"
    ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
    if [ "${KSNET_KS_LEAKS:-0}" != 1 ]; then
        ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
    fi
    export ASAN_OPTIONS
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
esac

# The scripts' shared helpers (tests/kscript/lib/*.ks) and the plugin folder's parent;
# the working directory (kscript searches `.` first) holds neither.
export KSPATH="$(cd "$(dirname "$script")" && pwd)/lib:$scratch/kpm"
cd "$scratch/run"
# KSNET_KS_TMPDIR: the TMPDIR ks runs with (the runner's own scratch folder is made above).
if [ -n "${KSNET_KS_TMPDIR:-}" ]; then
    export TMPDIR=$KSNET_KS_TMPDIR
fi
# Not exec: the trap removes the scratch folder once ks has ended.
status=0
if [ -n "$preloads" ]; then
    env LD_PRELOAD="$preloads" "$ks" "$script" || status=$?
else
    "$ks" "$script" || status=$?
fi
exit "$status"
