#!/usr/bin/env bash
# The Debian packages the project builds and tests with (scripts/debian-packages.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# shellcheck disable=SC2046  # one package a word
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends $(cat scripts/debian-packages.txt) >/dev/null
