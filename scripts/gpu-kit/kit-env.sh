# Sourced by run-a.sh and run-b.sh from the repository root: the kit folder ($KIT, default /tmp/kit), the output
# folder ($OUT, default /tmp/gpu-out, created), a log line with the seconds since the call began, and the kit
# avatar's two render graphs as bench/gpu.ts arguments.
K=${KIT:-/tmp/kit}
O=${OUT:-/tmp/gpu-out}
t0=$(date +%s)
log() { echo "== $(($(date +%s) - t0)) s: $*"; }
GRAPHS=(--graph "$K/avatar/render.onnx=exact: SyncTalk schedule" --graph "$K/avatar/render_fixed16.onnx=fixed: 16 samples/ray")
mkdir -p "$O"
