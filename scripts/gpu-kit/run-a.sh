#!/usr/bin/env bash
# GPU kit, device call A (carry .gpu/a; docs/gpu.md): unpacks the kit to $KIT (default /tmp/kit, which the machine
# keeps for call B while it stays warm), probes the machine, and times the render graph on the webgpu provider
# (Vulkan: the kit's loader and GLVND libraries with NVIDIA's Vulkan driver), exact and fixed-16 graphs, batch 1, 4,
# 8, 16, each checked against the CPU provider's frame. Writes $OUT/results.jsonl, $OUT/table.md, $OUT/bench.log; at most about 3.5 minutes.
# Environment: QUICK=1 (one run per step: a smoke test), PROVIDERS (default webgpu), BATCHES (default 1,4,8,16).
set -u
cd "$(dirname "$0")/../.."
. scripts/gpu-kit/kit-env.sh
mkdir -p "$K"
[ -f .gpu/a/kit.tar.xz ] || { echo "no .gpu/a/kit.tar.xz: build it with npm run gpu-kit and carry .gpu/a"; exit 2; }
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .gpu/a/kit.tar.xz "$K" || { echo "unpacking failed"; exit 2; }
rm -f "$K/results.jsonl"
log "kit unpacked in $K: $(du -sh "$K" | cut -f1)"

log probe
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1 | tee "$O/gpu.txt"
grep PRETTY /etc/os-release; uname -r; nproc; "$K/node" --version
ls /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null
ldconfig -p | grep -E 'libvulkan|libGLX_nvidia|libcuda\.so' | head -5

# WebGPU: the Vulkan loader and GLVND from the kit (unpacked into the kit, not the system), NVIDIA's Vulkan ICD.
mkdir -p "$K/gl"
for deb in .gpu/a/gl/*.deb; do dpkg -x "$deb" "$K/gl"; done
L="$K/gl/usr/lib/x86_64-linux-gnu"
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && L="$L:$d"; done
export LD_LIBRARY_PATH="$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
done
log "VK_DRIVER_FILES=${VK_DRIVER_FILES:-none found} LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

log "render graph on ${PROVIDERS:-webgpu}"
timeout 180 "$K/node" "$K/bench/gpu.mjs" --bundle "$K/avatar" "${GRAPHS[@]}" --providers "${PROVIDERS:-webgpu}" --batches "${BATCHES:-1,4,8,16}" \
  --runs 10 --seconds 6 --check --results "$K/results.jsonl" ${QUICK:+--quick} >> "$O/bench.log" \
  2> >(grep -vE 'VerifyEachNodeIsAssignedToAnEp|^Warning: max|^\s*$' | tail -20 >&2)
echo "rc=$?"
cp "$K/results.jsonl" "$O/results.jsonl" 2>/dev/null
"$K/node" "$K/bench/gpu.mjs" --table --results "$K/results.jsonl" | tee "$O/table.md"
log "call A done"
