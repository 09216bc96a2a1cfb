#!/usr/bin/env bash
# Puts onnxruntime-node's CUDA execution provider in place, so the `infer` element's `cuda` provider loads.
#
# onnxruntime-node ships the CPU and WebGPU providers only; its CUDA provider is two shared libraries
# (libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so) that must sit beside its binding
# (node_modules/onnxruntime-node/bin/napi-v6/linux/x64/) and be built for the same onnxruntime version. Sources:
#   pypi   PyPI onnxruntime-gpu==<onnxruntime-node's version>, a CUDA 13 + cuDNN 9 build: the two libraries are
#          unzipped from its manylinux wheel (pip download; the wheel is about 250 MB and is not kept).
#   nuget  onnxruntime-node's own install script (its postinstall, which this project's npm install skips), which
#          downloads NuGet Microsoft.ML.OnnxRuntime.Gpu.Linux (a CUDA 12 build).
#   auto   (default) pypi, else nuget when PyPI cannot be reached.
# The provider also needs the CUDA libraries of its CUDA major version (cudart, cublas, cublasLt, curand, cufft,
# cuDNN 9) and the NVIDIA driver (libcuda.so.1). They are looked up in the system's library path, CUDA toolkits in
# /usr/local/cuda*, the nvidia-* pip packages of this machine's Pythons, and the private folder below; when some
# are missing and an NVIDIA driver is present, the nvidia-* pip packages are installed into the private folder
# ($SYNCTALK_CUDA_DIR, default ~/.cache/synctalk-live/cuda<major>), and DIR/env.sh sets LD_LIBRARY_PATH for them.
#
# Then it verifies by opening a session on the cuda provider (models/demo-face.onnx) and running it once. The last
# line says the outcome: the provider works (and the LD_LIBRARY_PATH to use), or, on a machine without a GPU, that
# it is installed and no CUDA device was found (exit 0), or what failed (exit 1).
#
# usage: scripts/install-cuda-provider.sh [--source auto|pypi|nuget] [--remove]
#   --remove   deletes the provider libraries from onnxruntime-node's folder again.
set -euo pipefail
cd "$(dirname "$0")/.."

source=auto
remove=false
while (($#)); do
  case $1 in
    --source) source=${2:?--source needs auto, pypi or nuget}; shift 2 ;;
    --remove) remove=true; shift ;;
    *) echo "install-cuda-provider: unknown argument $1 (usage: $0 [--source auto|pypi|nuget] [--remove])" >&2; exit 2 ;;
  esac
done
case $source in auto | pypi | nuget) ;; *) echo "install-cuda-provider: --source must be auto, pypi or nuget, not $source" >&2; exit 2 ;; esac
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { echo "install-cuda-provider: the CUDA provider is for Linux x86_64; this is $(uname -s) $(uname -m)" >&2; exit 1; }

say() { echo "install-cuda-provider: $*" >&2; }
ort_pkg=$(node -p "require.resolve('onnxruntime-node/package.json')" 2>/dev/null) || { say "onnxruntime-node is not installed here: run npm ci first"; exit 1; }
ort_dir=$(dirname "$ort_pkg")
version=$(node -p "require('$ort_pkg').version")
bin="$ort_dir/bin/napi-v6/linux/x64"
libs=(libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so)

if $remove; then
  rm -f "${libs[@]/#/$bin/}" "$bin/libonnxruntime_providers_tensorrt.so"
  echo "CUDA provider removed from $bin"
  exit 0
fi

python=""
for p in python3 /usr/bin/python3 python; do
  if command -v "$p" >/dev/null && "$p" -m pip --version >/dev/null 2>&1; then python=$p; break; fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

from_pypi() {
  [ -n "$python" ] || { say "no Python with pip here (pip downloads the onnxruntime-gpu wheel)"; return 1; }
  say "downloading onnxruntime-gpu==$version from PyPI (about 250 MB)"
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$work" "onnxruntime-gpu==$version" || return 1
  "$python" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract("onnxruntime/capi/" + n, sys.argv[2]) for n in sys.argv[3:]]' \
    "$(ls "$work"/onnxruntime_gpu-*.whl)" "$work/unzipped" "${libs[@]}"
  cp "${libs[@]/#/$work/unzipped/onnxruntime/capi/}" "$bin/"
  cuda_major=13
}

from_nuget() {
  say "running onnxruntime-node's own install (NuGet Microsoft.ML.OnnxRuntime.Gpu.Linux $version, CUDA 12)"
  # its postinstall script, run directly: `npm rebuild` would skip it where package.json's allowScripts denies it
  (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=true node script/install) >&2 || return 1
  for l in "${libs[@]}"; do [ -f "$bin/$l" ] || return 1; done
  cuda_major=12
}

case $source in
  pypi) from_pypi || { say "could not get onnxruntime-gpu==$version from PyPI"; exit 1; } ;;
  nuget) from_nuget || { say "onnxruntime-node's NuGet download failed (is api.nuget.org reachable?)"; exit 1; } ;;
  auto) from_pypi || { say "PyPI failed; trying NuGet"; from_nuget; } || { say "neither PyPI nor NuGet gave the CUDA provider for onnxruntime $version"; exit 1; } ;;
esac
say "provider libraries of onnxruntime $version (CUDA $cuda_major build) are in $bin"

# The CUDA libraries the provider loads (by soname), and where this machine has them.
if [ "$cuda_major" = 13 ]; then
  sonames=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9)
  packages=('nvidia-cuda-runtime~=13.0' 'nvidia-cublas~=13.0' 'nvidia-curand~=10.0' 'nvidia-cufft~=12.0' 'nvidia-cudnn-cu13~=9.0' 'nvidia-cuda-nvrtc~=13.0')
else
  sonames=(libcudart.so.12 libcublas.so.12 libcublasLt.so.12 libcurand.so.10 libcufft.so.11 libcudnn.so.9)
  packages=('nvidia-cuda-runtime-cu12~=12.0' 'nvidia-cublas-cu12~=12.0' 'nvidia-curand-cu12~=10.0' 'nvidia-cufft-cu12~=11.0' 'nvidia-cudnn-cu12~=9.0')
fi
private=${SYNCTALK_CUDA_DIR:-$HOME/.cache/synctalk-live/cuda$cuda_major}
site_dirs() {
  for p in python3 /usr/bin/python3; do
    command -v "$p" >/dev/null && "$p" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null
  done | sort -u | sed 's#$#/nvidia#'
}
search=("$private" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-"$cuda_major"*/targets/x86_64-linux/lib)
while read -r d; do search+=("$d"); done < <(site_dirs)
# locate: sets lib_path (folders to put on LD_LIBRARY_PATH) and missing (sonames found nowhere)
locate() {
  lib_path=()
  missing=()
  local so found d
  for so in "${sonames[@]}"; do
    ldconfig -p 2>/dev/null | grep -q "	$so " && continue
    found=$(find "${search[@]}" -name "$so" 2>/dev/null | head -1 || true)
    if [ -z "$found" ]; then
      missing+=("$so")
      continue
    fi
    d=$(dirname "$found")
    case " ${lib_path[*]:-} " in *" $d "*) ;; *) lib_path+=("$d") ;; esac
  done
}
locate

driver=false
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' || [ -e /dev/nvidiactl ]; then driver=true; fi
if ((${#missing[@]})) && $driver; then
  [ -n "$python" ] || { say "CUDA libraries missing (${missing[*]}) and no pip to fetch them: install a CUDA $cuda_major toolkit and cuDNN 9"; exit 1; }
  say "installing the CUDA $cuda_major libraries from PyPI (${packages[*]}) into $private"
  "$python" -m pip install -q --upgrade --only-binary=:all: --target "$private" "${packages[@]}"
  locate
fi
ld=$(IFS=:; echo "${lib_path[*]:-}")
if [ -n "$ld" ]; then
  mkdir -p "$private"
  printf '# CUDA %s libraries for onnxruntime-node'"'"'s CUDA provider (scripts/install-cuda-provider.sh)\nexport LD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' "$cuda_major" "$ld" > "$private/env.sh"
fi

# Verify: a session on the cuda provider, run once. ORT's own log (stderr) names the library that failed to load.
out=$(LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" node --input-type=module -e "
import ort from 'onnxruntime-node';
try {
  const s = await ort.InferenceSession.create('models/demo-face.onnx', { executionProviders: ['cuda'], logSeverityLevel: 3 });
  await s.run({ audio: new ort.Tensor('float32', new Float32Array(640), [1, 640]), phase: new ort.Tensor('float32', new Float32Array(1), [1]) });
  console.log('ok');
} catch (e) { console.log('error ' + String(e.message).split('\n')[0]); }
" 2>&1 || true)
verdict=$(tail -1 <<<"$out")
detail=$(grep -o 'Failed to load library [^ ]* with error: [^[]*' <<<"$out" | head -1 | sed -E 's/ *$//' || true)
[ -z "$detail" ] || verdict="$verdict: $detail"
installed="CUDA provider installed in $bin (onnxruntime $version, CUDA $cuda_major build)"
no_device="$installed; no CUDA device found"
if [ "$verdict" = ok ]; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
  echo "$installed; a session runs on cuda${gpu:+ ($gpu)}${ld:+; use it with: export LD_LIBRARY_PATH=$ld\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} (or . $private/env.sh)}"
elif [[ $verdict =~ with\ error:\ [^:]*libonnxruntime_providers_ ]]; then
  echo "CUDA provider NOT usable: onnxruntime-node did not load its provider libraries from $bin: ${verdict#error }" >&2
  exit 1
elif [[ $verdict =~ libcuda\.so\.1|no\ CUDA-capable\ device|cudaErrorNoDevice|CUDA\ driver\ version\ is\ insufficient ]]; then
  echo "$no_device ($($driver && echo "the NVIDIA driver reports none" || echo "no NVIDIA driver: libcuda.so.1 missing")), so models run on webgpu or cpu"
elif ! $driver; then
  echo "$no_device (no NVIDIA driver: libcuda.so.1 missing${missing:+; CUDA libraries not fetched}), so models run on webgpu or cpu"
elif ((${#missing[@]})); then
  echo "CUDA provider installed but not usable: CUDA libraries not found: ${missing[*]} (${verdict#error })" >&2
  exit 1
else
  echo "CUDA provider installed but a session on cuda failed: ${verdict#error }" >&2
  exit 1
fi
