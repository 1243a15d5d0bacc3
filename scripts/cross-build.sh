#!/usr/bin/env bash
# Cross-compiles the addon for a device and stores it where node-gyp-build finds it
# (prebuilds/linux-ARCH/node.napi.node), so `npm install` on the device needs no compiler.
#
#   scripts/cross-build.sh arm64     # Raspberry Pi 3/4/5 (64-bit OS), most ARM set-top boxes
#   scripts/cross-build.sh arm       # 32-bit ARMv7 (armhf) boxes
#
# Needs Debian's cross compilers: apt-get install g++-aarch64-linux-gnu g++-arm-linux-gnueabihf
# The addon is built against Node-API 8 and Node's own OpenSSL headers, so one prebuild
# serves every Node >= 20 on that architecture.
set -euo pipefail
arch=${1:?usage: $0 arm64|arm}
case "$arch" in
  arm64) triple=aarch64-linux-gnu ;;
  arm) triple=arm-linux-gnueabihf ;;
  x64) triple=x86_64-linux-gnu ;;
  *) echo "unknown arch '$arch' (arm64, arm, x64)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
command -v "$triple-g++" >/dev/null || { echo "missing $triple-g++ (apt-get install g++-${triple%%-*}-linux-gnu*)" >&2; exit 1; }
nodedir=${npm_config_nodedir:-$(dirname "$(dirname "$(command -v node)")")}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/native" "$root/binding.gyp" "$work/"
ln -s "$root/node_modules" "$work/node_modules"
# libdrm (output protection) comes from the TARGET's pkg-config files: Debian multiarch puts
# them in /usr/lib/$triple/pkgconfig (dpkg --add-architecture $arch; apt-get install
# libdrm-dev:$arch). Without them the prebuild has no libdrm backend: outputs read "unknown".
export PKG_CONFIG_LIBDIR="/usr/lib/$triple/pkgconfig:/usr/share/pkgconfig"
if pkg-config --exists libdrm 2>/dev/null; then echo "cross-build: with libdrm $(pkg-config --modversion libdrm) for $triple"
else echo "cross-build: no libdrm-dev:$arch found, building without the libdrm backend"; fi
(cd "$work" && CC=$triple-gcc CXX=$triple-g++ LINK=$triple-g++ AR=$triple-ar \
  node "$root/node_modules/node-gyp/bin/node-gyp.js" rebuild --arch="$arch" --nodedir="$nodedir" \
  >"$work/build.log" 2>&1) || { cat "$work/build.log" >&2; exit 1; }
mkdir -p "$root/prebuilds/linux-$arch"
cp "$work/build/Release/keywarden.node" "$root/prebuilds/linux-$arch/node.napi.node"
"$triple-strip" --strip-unneeded "$root/prebuilds/linux-$arch/node.napi.node" 2>/dev/null || true
file "$root/prebuilds/linux-$arch/node.napi.node"
