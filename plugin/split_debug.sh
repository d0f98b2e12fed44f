#!/bin/sh
# split_debug.sh LINKED PLUGIN DEBUG: PLUGIN is LINKED without its debug information,
# which goes to DEBUG (gdb finds it through PLUGIN's .gnu_debuglink). A host copies the
# plugin before every dlopen, so its size is most of what `import net` costs.
set -eu
objcopy --only-keep-debug "$1" "$3"
objcopy --strip-debug --add-gnu-debuglink="$3" "$1" "$2"
