#!/usr/bin/env bash
# The Debian packages the project builds and tests with.
set -euo pipefail
packages=(g++ meson ninja-build pkg-config libuv1-dev doctest-dev binutils python3)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
