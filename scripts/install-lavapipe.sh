#!/usr/bin/env bash
# Installs Mesa's lavapipe (a Vulkan driver on the CPU) into a private folder, so onnxruntime-node's WebGPU provider
# (Dawn, Vulkan backend) runs on a machine without a GPU: CI tests the WebGPU path with it (test/webgpu.test.ts).
#
# Debian bookworm's own Mesa 22.3.6 lavapipe is refused by Dawn ("Vulkan shaderUniform*ArrayDynamicIndexing
# required"); bookworm-backports' Mesa 25 works. Its packages (mesa-vulkan-drivers, libdrm2, libdrm-amdgpu1 from
# backports; libvulkan1 and any other dependency this machine lacks from bookworm) are fetched with `apt-get download`
# through a private apt configuration (the system's Debian archive plus a bookworm-backports line, lists kept in the
# private folder) and unpacked with `dpkg -x`: the system's apt sources, package state and Mesa stay as they are.
# Needs apt-get and dpkg (any user; no root). Safe to run again (does nothing when installed).
#
# usage: scripts/install-lavapipe.sh [DIR]     DIR default: $SYNCTALK_LAVAPIPE_DIR or ~/.cache/synctalk-live/lavapipe
# Result: DIR/lvp_icd.json (the ICD file, library path absolute) and DIR/env.sh, which sets
#   VK_DRIVER_FILES=DIR/lvp_icd.json and LD_LIBRARY_PATH=DIR/root/usr/lib/x86_64-linux-gnu (newer libdrm, libvulkan)
# for the processes that should use it: `. DIR/env.sh`.
set -euo pipefail
DIR=${1:-${SYNCTALK_LAVAPIPE_DIR:-$HOME/.cache/synctalk-live/lavapipe}}
BACKPORTS=(mesa-vulkan-drivers libdrm2 libdrm-amdgpu1)
MAIN=(libvulkan1)
MIN_MESA=25

triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
if [ -f "$DIR/lvp_icd.json" ] && [ -f "$DIR/env.sh" ]; then
  echo "lavapipe: already installed in $DIR (. $DIR/env.sh)"
  exit 0
fi

# The Debian archive this machine uses (deb822 or one-line sources), default deb.debian.org.
mirror=${LAVAPIPE_MIRROR:-$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb .*debian/? bookworm' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/^deb (\[[^]]*\] )?([^ ]+).*/\2/'
  } | grep -E '/debian/?$' | head -1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""; [ -f "$keyring" ] && signed="[signed-by=$keyring] "

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
printf 'deb %s%s bookworm main\ndeb %s%s bookworm-backports main\n' "$signed" "$mirror" "$signed" "$mirror" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache" -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
echo "lavapipe: reading bookworm and bookworm-backports package lists from $mirror"
apt-get "${apt_opts[@]}" -qq update

# Dependencies of the backports driver that this machine does not have, from bookworm.
needed=()
while read -r dep; do
  case " ${BACKPORTS[*]} ${MAIN[*]} " in *" $dep "*) continue ;; esac
  dpkg-query -W -f '${Status}' "$dep" 2>/dev/null | grep -q 'ok installed' || needed+=("$dep")
done < <(apt-cache "${apt_opts[@]}" depends --no-recommends --no-suggests --no-enhances --no-breaks --no-replaces --no-conflicts \
  "mesa-vulkan-drivers/bookworm-backports" | awk '/Depends:/ {print $2}' | grep -v '^<' | sort -u)

specs=()
for p in "${BACKPORTS[@]}"; do specs+=("$p/bookworm-backports"); done
specs+=("${MAIN[@]}" "${needed[@]}")
echo "lavapipe: downloading ${specs[*]}"
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download "${specs[@]}")

rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp/root"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$DIR.tmp/root"; done
version=$(dpkg-deb -f "$work"/debs/mesa-vulkan-drivers_*.deb Version)
[ "${version%%.*}" -ge "$MIN_MESA" ] || { echo "lavapipe: got Mesa $version from bookworm-backports; Dawn needs Mesa >= $MIN_MESA" >&2; exit 1; }

icd=$(ls "$DIR.tmp"/root/usr/share/vulkan/icd.d/lvp_icd*.json | head -1)
# only lavapipe is wanted: the hardware drivers and layers of the package go
find "$DIR.tmp/root/usr/lib/$triplet" -name 'libvulkan_*.so' ! -name libvulkan_lvp.so -delete
find "$DIR.tmp/root/usr/lib/$triplet" -name 'libVkLayer_*.so' -delete
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
lib="$DIR/root/usr/lib/$triplet"
sed -E "s#\"library_path\": *\"([^\"]*/)?([^/\"]+)\"#\"library_path\": \"$lib/\\2\"#" "$DIR/root/usr/share/vulkan/icd.d/$(basename "$icd")" > "$DIR/lvp_icd.json"
cat > "$DIR/env.sh" <<EOF
# Mesa $version lavapipe (scripts/install-lavapipe.sh): Vulkan on the CPU for the WebGPU provider.
export VK_DRIVER_FILES="$DIR/lvp_icd.json"
export LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
echo "lavapipe: Mesa $version installed in $DIR; use it with: . $DIR/env.sh"
