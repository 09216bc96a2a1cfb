#!/usr/bin/env bash
# GPU kit, device call B (carry .gpu/b; within 30 s of call A, while the machine still holds $KIT from it;
# docs/gpu.md): puts the CUDA provider beside onnxruntime-node's binding, points the loader at the machine's CUDA 13
# and cuDNN 9 libraries (the nvidia-* pip packages of its PyTorch, or a CUDA toolkit), times the render graph on
# cuda (batch 1, 4, 8, 16, checked against the CPU provider's frame) and the PyTorch reference on cuda (the
# yardstick), and prints the one table of calls A and B. Writes $OUT/results.jsonl, $OUT/table.md,
# $OUT/bench.log, $OUT/smi.csv;
# at most about 4.5 minutes.
# Environment: QUICK=1 (one run per step), PROVIDERS (default cuda), BATCHES (default 1,4,8,16), TORCH_DEVICE
# (default cuda), TORCH_SECONDS (default 100).
set -u
cd "$(dirname "$0")/../.."
. scripts/gpu-kit/kit-env.sh
[ -x "$K/node" ] || { echo "COLD MACHINE: $K from call A is gone (the machine was idle over 30 s); run call A again, then B at once"; exit 3; }
X="$K/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
  .gpu/b/libonnxruntime_providers_cuda.so.xz "$X/libonnxruntime_providers_cuda.so" || { echo "unpacking the CUDA provider failed"; exit 2; }
cp .gpu/b/libonnxruntime_providers_shared.so "$X/"
log "CUDA provider in place"

# The CUDA libraries the provider loads: the image's PyTorch (nvidia-* pip packages) or a CUDA toolkit.
roots=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
L=""
for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9 libnvrtc.so.13 libnvJitLink.so.13; do
  p=$(find $roots /opt /usr/local/cuda/lib64 /usr/local/cuda/targets -name "$so" 2>/dev/null | head -1)
  echo "$so -> ${p:-MISSING}"
  [ -n "$p" ] && case ":$L:" in *":$(dirname "$p"):"*) ;; *) L="$L:$(dirname "$p")" ;; esac
done
export LD_LIBRARY_PATH="${L#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CUDA_MODULE_LOADING=LAZY
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 1 > "$O/smi.csv" 2>/dev/null &
smi=$!

filter() { grep -vE 'VerifyEachNodeIsAssignedToAnEp|^Warning: max|^\s*$' | tail -20 >&2; }
log "render graph on ${PROVIDERS:-cuda}"
timeout 120 "$K/node" "$K/bench/gpu.mjs" --bundle "$K/avatar" "${GRAPHS[@]}" --providers "${PROVIDERS:-cuda}" --batches "${BATCHES:-1,4,8,16}" \
  --runs 20 --seconds 6 --check --results "$K/results.jsonl" ${QUICK:+--quick} >> "$O/bench.log" 2> >(filter)
echo "rc=$?"
log "PyTorch reference on ${TORCH_DEVICE:-cuda}"
timeout $((${TORCH_SECONDS:-100} + 20)) "$K/node" "$K/bench/gpu.mjs" --bundle "$K/avatar" --providers '' \
  --torch "${TORCH_DEVICE:-cuda}" --torch-frames 5 --torch-seconds "${TORCH_SECONDS:-100}" \
  --results "$K/results.jsonl" ${QUICK:+--quick} >> "$O/bench.log" 2> >(filter)
echo "rc=$?"
kill $smi 2>/dev/null
cp "$K/results.jsonl" "$O/results.jsonl"
"$K/node" "$K/bench/gpu.mjs" --table --results "$K/results.jsonl" | tee "$O/table.md"
log "call B done; GPU utilization %, MiB used (1 s samples), max: $(sort -t, -k2 -n "$O/smi.csv" 2>/dev/null | tail -1)"
