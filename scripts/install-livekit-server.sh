#!/usr/bin/env bash
# Builds the LiveKit server used by the LiveKit tests and `startDevServer()`, pinned to v1.13.5,
# from the Go module proxy (needs Go >= 1.26 on PATH). Idempotent: does nothing when the binary exists.
# Cache folder: $LIVEKIT_SERVER_CACHE, default ~/.cache/synctalk-live/livekit-server-v1.13.5.
# Prints the binary's path on stdout.
set -euo pipefail

version=v1.13.5
cache="${LIVEKIT_SERVER_CACHE:-$HOME/.cache/synctalk-live/livekit-server-$version}"
bin="$cache/bin/server"

if [ ! -x "$bin" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-livekit-server.sh: go not found; install Go >= 1.26 (https://go.dev/dl/) and run again" >&2
    exit 1
  fi
  mkdir -p "$cache/bin"
  echo "building livekit-server $version into $cache/bin (a few minutes)..." >&2
  GOBIN="$cache/bin" go install "github.com/livekit/livekit-server/cmd/server@$version"
fi

echo "$bin"
