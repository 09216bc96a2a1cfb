#!/usr/bin/env bash
# Starts the two-worker LiveKit system: the agent worker (Gemini, or the scripted espeak-ng agent
# without credentials), the avatar worker (registered as 'synctalk-avatar'), the test client's token
# server + page, and, when LIVEKIT_URL is not given, a local livekit-server on 127.0.0.1.
# Ctrl-C (or SIGTERM) stops everything.
#
# Environment (defaults in brackets):
#   LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET  the server [a local one, when installed with
#                                       scripts/install-livekit-server.sh]
#   SYNCTALK_PIPELINE                   avatar pipeline spec [src/pipelines/presets/live-demo.json]
#   SYNCTALK_BUNDLE                     avatar model, 'demo' or a path [demo: the bundled demo face]
#   AVATAR_FPS                          avatar video frame rate [the pipeline's, 25]
#   AVATAR_WIDTH, AVATAR_HEIGHT         published video size: a `scale` element after `infer` resizes
#                                       the model's frames (aspect kept, letterboxed) [the model's size]
#   GOOGLE_APPLICATION_CREDENTIALS + VERTEX_PROJECT_ID [+ VERTEX_LOCATION], or GOOGLE_API_KEY:
#                                       Gemini for the agent (see docs/agent.md) [none: scripted agent]
#   SYNCTALK_AGENT_LINES                scripted agent's lines, '|'-separated
#   TOKEN_SERVER_PORT [8080], SYNCTALK_AGENT_HTTP_PORT [8081], SYNCTALK_AVATAR_HTTP_PORT [8082]
#   STOP_GRACE_SECONDS [8]              Ctrl-C: seconds for workers to drain after SIGINT, then again
#                                       after SIGTERM, before SIGKILL
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUN=(node --import tsx)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/synctalk-start.XXXXXX")
GRACE=${STOP_GRACE_SECONDS:-8}
declare -A NAMES=()
PIDS=()

say() { printf 'start.sh: %s\n' "$*" >&2; }

# Each part runs in its own session (process group), so stopping it reaches its job processes too.
launch() {
  local name=$1
  shift
  setsid "$@" &
  PIDS+=("$!")
  NAMES[$!]=$name
}

alive() { kill -0 "$1" 2>/dev/null; }

# Stops the given parts: SIGINT (agents-js workers drain their jobs), SIGTERM after GRACE seconds,
# SIGKILL (whole process group) after as long again.
stop_parts() {
  local sig pid waited any
  for sig in INT TERM; do
    for pid in "$@"; do alive "$pid" && kill "-$sig" -- "-$pid" 2>/dev/null || true; done
    for ((waited = 0; waited < GRACE * 10; waited++)); do
      any=0
      for pid in "$@"; do alive "$pid" && any=1; done
      ((any)) || return 0
      sleep 0.1
    done
  done
  for pid in "$@"; do
    if alive "$pid"; then
      say "${NAMES[$pid]} still running: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
}

# The workers and the token server first, the local server (PIDS[0] when started here) last.
stop_all() {
  trap "" INT TERM
  trap - EXIT
  local parts=() pid
  for pid in "${PIDS[@]}"; do [[ ${NAMES[$pid]} == livekit-server ]] || parts+=("$pid"); done
  ((${#parts[@]})) && stop_parts "${parts[@]}"
  for pid in "${PIDS[@]}"; do [[ ${NAMES[$pid]} == livekit-server ]] && stop_parts "$pid"; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap stop_all EXIT
trap 'say "stopping"; exit 130' INT
trap 'say "stopping"; exit 143' TERM

# 1. The LiveKit server.
if [[ -z "${LIVEKIT_URL:-}" ]]; then
  launch livekit-server "${RUN[@]}" src/client/local-server.ts "$WORK/livekit.env"
  for ((i = 0; i < 300; i++)); do
    [[ -f "$WORK/livekit.env" ]] && break
    alive "${PIDS[0]}" || { say "no LIVEKIT_URL given and the local livekit-server did not start (see above)"; exit 2; }
    sleep 0.1
  done
  [[ -f "$WORK/livekit.env" ]] || { say "the local livekit-server did not start within 30 s"; exit 2; }
  # shellcheck disable=SC1091
  source "$WORK/livekit.env"
  say "local livekit-server: $LIVEKIT_URL"
elif [[ -z "${LIVEKIT_API_KEY:-}" || -z "${LIVEKIT_API_SECRET:-}" ]]; then
  say "LIVEKIT_URL is set: LIVEKIT_API_KEY and LIVEKIT_API_SECRET are needed too"
  exit 2
fi
export LIVEKIT_URL LIVEKIT_API_KEY LIVEKIT_API_SECRET

# 2. The avatar pipeline: the preset, or the preset with SYNCTALK_BUNDLE / AVATAR_FPS / AVATAR_WIDTH x AVATAR_HEIGHT applied.
if [[ -z "${SYNCTALK_PIPELINE:-}" && ( -n "${SYNCTALK_BUNDLE:-}" || -n "${AVATAR_FPS:-}" || -n "${AVATAR_WIDTH:-}${AVATAR_HEIGHT:-}" ) ]]; then
  SYNCTALK_PIPELINE="$WORK/pipeline.json"
  node -e '
    const fs = require("node:fs");
    const [preset, out] = process.argv.slice(1);
    const spec = JSON.parse(fs.readFileSync(preset, "utf8"));
    const { SYNCTALK_BUNDLE: bundle, AVATAR_FPS: fps, AVATAR_WIDTH: width, AVATAR_HEIGHT: height } = process.env;
    if (fps) {
      if (!(Number(fps) > 0)) { console.error(`AVATAR_FPS: not a positive number: ${fps}`); process.exit(2); }
      spec.fps = Number(fps);
    }
    if (bundle) {
      const infer = spec.operators.find((o) => o.element === "infer");
      if (!infer) { console.error(`${preset}: no infer element to give SYNCTALK_BUNDLE to`); process.exit(2); }
      infer.model = bundle;
    }
    if (width || height) {
      if (!(Number.isInteger(Number(width)) && Number(width) > 1 && Number.isInteger(Number(height)) && Number(height) > 1)) {
        console.error(`AVATAR_WIDTH, AVATAR_HEIGHT: need both, as whole numbers of pixels: ${width}x${height}`);
        process.exit(2);
      }
      const at = spec.operators.findIndex((o) => o.element === "infer");
      spec.operators.splice(at + 1, 0, { element: "scale", width: Number(width), height: Number(height) });
    }
    fs.writeFileSync(out, JSON.stringify(spec, null, 2));
  ' src/pipelines/presets/live-demo.json "$SYNCTALK_PIPELINE"
fi
[[ -n "${SYNCTALK_PIPELINE:-}" ]] && export SYNCTALK_PIPELINE

# 3. The workers and the test client.
launch avatar-worker node --initial-old-space-size=64 --import tsx src/workers/avatar-worker.ts start
launch agent-worker "${RUN[@]}" src/workers/agent-worker.ts start
launch token-server "${RUN[@]}" src/client/token-server.ts
say "test client: http://127.0.0.1:${TOKEN_SERVER_PORT:-8080}/  (Ctrl-C stops everything)"

# Runs until Ctrl-C, or until one part exits (then the rest are stopped too).
set +e
wait -n "${PIDS[@]}"
code=$?
for pid in "${PIDS[@]}"; do
  alive "$pid" || { say "${NAMES[$pid]} exited (status $code): stopping the rest"; break; }
done
exit "$code"
