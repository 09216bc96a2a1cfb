#!/usr/bin/env bash
# `npm run gpu-kit`: builds what a bare GPU machine with no network and no Node needs to run bench/gpu.ts, in two
# bundles of at most 64 MiB each together with the tracked working tree (a device call carries the tree plus the
# ignored paths it names, 64 MiB in all). docs/gpu.md says how to run it.
#
#   .gpu/a (call A, scripts/gpu-kit/run-a.sh): kit.tar.xz = node (this machine's, stripped), onnxruntime-node's
#          linux/x64 files, bench/gpu.ts bundled into one file by esbuild, a 512x512 portrait test avatar exported
#          here (manifest, tracks, images and two render graphs: render.onnx, the exact one with SyncTalk's marching
#          schedule, and render_fixed16.onnx, 16 samples per ray; random weights: the same work as a trained
#          avatar); gl/ =
#          the Vulkan loader and GLVND .debs the WebGPU provider needs beside NVIDIA's Vulkan driver.
#   .gpu/b (call B, scripts/gpu-kit/run-b.sh): onnxruntime-node's CUDA provider (PyPI onnxruntime-gpu of the same
#          version, a CUDA 13 build) with the code of every GPU architecture but sm_90 (H100/H200) zeroed
#          (scripts/gpu-kit/keep-sm90.py), xz-compressed.
#
# Needs here: the project's npm install, /usr/bin/python3 with Debian's torch (the exporter; the GPU machine's newer
# torch would export a different graph), pip (PyPI), apt-get (Debian's archive), xz, strip. 5 to 15 minutes (two 512x512 exports, xz -9).
# Environment: GPU_KIT_SIZE (default 512), GPU_KIT_SM (default 90), GPU_KIT_DIR (default .gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE=${GPU_KIT_SIZE:-512}
SM=${GPU_KIT_SM:-90}
DEST=${GPU_KIT_DIR:-.gpu}
PYTHON=${SYNCTALK_PYTHON:-/usr/bin/python3}
LIMIT=$((64 * 1024 * 1024))
say() { echo "gpu-kit: $*" >&2; }
for tool in xz strip apt-get; do command -v $tool >/dev/null || { say "$tool is missing"; exit 1; }; done
"$PYTHON" -c 'import torch' 2>/dev/null || { say "$PYTHON cannot import torch (apt-get install python3-torch)"; exit 1; }
pip=""
for p in python3 "$PYTHON"; do "$p" -m pip --version >/dev/null 2>&1 && { pip=$p; break; }; done
[ -n "$pip" ] || { say "no pip here (it downloads onnxruntime-gpu from PyPI)"; exit 1; }
ORT=node_modules/onnxruntime-node
version=$(node -p "require('./$ORT/package.json').version")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$DEST/a" "$DEST/b"
mkdir -p "$DEST/a/gl" "$DEST/b" "$work/kit/bench" "$work/kit/avatar"

say "node $(node --version), stripped"
strip -o "$work/kit/node" "$(readlink -f "$(command -v node)")"

say "onnxruntime-node $version, linux/x64 only (no CUDA provider: that is call B)"
M="$work/kit/node_modules"
mkdir -p "$M/onnxruntime-node/bin/napi-v6/linux/x64" "$M/onnxruntime-common"
cp -r "$ORT/package.json" "$ORT/dist" "$M/onnxruntime-node/"
cp "$ORT/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT/bin/napi-v6/linux/x64/onnxruntime_binding.node" "$M/onnxruntime-node/bin/napi-v6/linux/x64/"
cp -r node_modules/onnxruntime-common/package.json node_modules/onnxruntime-common/dist "$M/onnxruntime-common/"
find "$M" \( -name '*.map' -o -name '*.d.ts' \) -delete

say "bench/gpu.ts -> one esbuild bundle (onnxruntime-node external)"
node_modules/.bin/esbuild bench/gpu.ts --bundle --platform=node --format=esm --target=node20 --external:onnxruntime-node \
  --outfile="$work/kit/bench/gpu.mjs" --log-level=warning \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"

say "a ${SIZE}x${SIZE} portrait test avatar: the exact render graph and a fixed 16-sample one ($PYTHON; about 4 minutes)"
export_avatar() { # OUT [export flags]
  local out=$1
  shift
  (cd python && "$PYTHON" -m synctalk_live.export --data "$work/ws/data" --workspace "$work/ws/workspace" \
    --ave "$work/ws/audio_visual_encoder.pth" --out "$out" --portrait "$@" 2>&1 | grep -E 'render graph|pixels need' >&2)
}
(cd python && "$PYTHON" -m synctalk_live.make_test_workspace --out "$work/ws" --variant portrait --size "$SIZE" >/dev/null)
export_avatar "$work/bundle"
export_avatar "$work/fixed" --samples 16
# bench/gpu.ts times the render graphs (both take the same inputs): the audio graphs stay here
cp -r "$work/bundle/manifest.json" "$work/bundle/tracks.json" "$work/bundle/render.onnx" "$work/bundle/torso_rgba" "$work/bundle/ori" "$work/bundle/mask" "$work/kit/avatar/"
cp "$work/fixed/render.onnx" "$work/kit/avatar/render_fixed16.onnx"

say "compressing call A's kit (xz -9)"
tar -C "$work/kit" -cf - . | xz -9 -T2 > "$DEST/a/kit.tar.xz"

say "Vulkan loader and GLVND .debs (Debian's archive)"
(cd "$DEST/a/gl" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2) \
  || { say "apt-get download failed (run apt-get update?)"; exit 1; }

say "CUDA provider: PyPI onnxruntime-gpu==$version (about 250 MB), non-sm_$SM code zeroed"
"$pip" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d "$work/whl" "onnxruntime-gpu==$version"
"$pip" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract("onnxruntime/capi/" + n, sys.argv[2]) for n in sys.argv[3:]]' \
  "$(ls "$work"/whl/onnxruntime_gpu-*.whl)" "$work/whl" libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so
cp "$work/whl/onnxruntime/capi/libonnxruntime_providers_shared.so" "$DEST/b/"
"$PYTHON" scripts/gpu-kit/keep-sm90.py "$work/whl/onnxruntime/capi/libonnxruntime_providers_cuda.so" "$work/cuda.so" "$SM"
xz -9 -T2 -c "$work/cuda.so" > "$DEST/b/libonnxruntime_providers_cuda.so.xz"

tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
a=$(du -sb "$DEST/a" | cut -f1)
b=$(du -sb "$DEST/b" | cut -f1)
du -ab "$DEST/a" "$DEST/b" | grep -v '/$' | sort -k2 >&2
status=0
for call in "A $a" "B $b"; do
  set -- $call
  total=$(($2 + tree))
  echo "gpu-kit: call $1: $DEST/$(tr AB ab <<<"$1") $2 bytes + working tree $tree = $total of $LIMIT ($((total * 100 / LIMIT)) %)"
  [ "$total" -le "$LIMIT" ] || { say "call $1 is over the 64 MiB a device call carries"; status=1; }
done
exit $status
