#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (Node 20, Go 1.26 and Python 3 already there) for synctalk-live:
# system packages from Debian's apt, the LiveKit server built with Go from the Go module proxy,
# and the npm dependencies. Nothing is downloaded from anywhere else. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(ffmpeg espeak-ng chromium python3-torch python3-onnx python3-numpy python3-pil)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash scripts/install-livekit-server.sh
# Mesa's lavapipe (Vulkan on the CPU) in a private folder, for the WebGPU tests; the system Mesa stays.
bash scripts/install-lavapipe.sh
bash scripts/make-python-venv.sh   # PyPI livekit-agents in .venv-agents, for test/livekit/python-agent.test.ts

# onnxruntime-node's install script would fetch CUDA libraries from NuGet: package.json's allowScripts denies it
# (npm >= 11.16); the variable covers older npm. CPU and WebGPU are bundled.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
