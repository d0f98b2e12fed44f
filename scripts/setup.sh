#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds everything and runs the demo: a talk server
# and client exchanging lines through the `net` plugin over loopback.
#   scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build
build/hosts/reference/ksphost -I build/plugin demo
