#!/usr/bin/env bash
# Installs the build into a scratch directory (DESTDIR) and checks the layout a user and
# an interpreter's build rely on: <plugindir>/net/ksp_net.so, ksphost, the ABI header,
# and a pkg-config file whose flags compile a file that includes the header. With
# kscript found, the folder also holds its adapter and the preload library.
#   check_install.sh BUILD_DIR PREFIX PLUGINDIR DATADIR CC
set -euo pipefail
build=$1 prefix=$2 plugindir=$3 datadir=$4 cc=$5
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null

root=$dest$prefix
case $plugindir in /*) plugin_root=$dest$plugindir ;; *) plugin_root=$root/$plugindir ;; esac
fail=0
for f in "$plugin_root/net/ksp_net.so" "$root/bin/ksphost" "$root/include/ksp/plugin_abi.h" \
         "$root/$datadir/pkgconfig/ksp-plugin-abi.pc"; do
    [ -f "$f" ] || { echo "missing after install: ${f#"$dest"}"; fail=1; }
done
[ "$fail" = 0 ] || exit 1
# Nothing else in the plugin folder: it is the one folder a user copies.
extra=$(find "$plugin_root/net" -mindepth 1 ! -name 'ksp_net.so' ! -name 'ksm_net.so' ! -name 'ksp_net_preload.so')
[ -z "$extra" ] || { echo "unexpected files in ${plugin_root#"$dest"}/net: $extra"; exit 1; }

export PKG_CONFIG_PATH=$root/$datadir/pkgconfig
cflags=$(pkg-config --define-prefix --cflags ksp-plugin-abi)
echo "pkg-config --cflags: $cflags"
echo "pkg-config plugindir: $(pkg-config --variable=plugindir ksp-plugin-abi)"
[ "$(pkg-config --variable=plugindir ksp-plugin-abi)" = "${plugin_root#"$dest"}" ] || {
    echo "plugindir variable is not ${plugin_root#"$dest"}"; exit 1; }
printf '#include <ksp/plugin_abi.h>\nint main(void) { return KSP_ABI_MAJOR == 0; }\n' > "$dest/probe.c"
# shellcheck disable=SC2086  # flags are words
"$cc" $cflags -c "$dest/probe.c" -o "$dest/probe.o"
echo "installed layout OK under $prefix"
