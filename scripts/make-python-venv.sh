#!/usr/bin/env bash
# Makes the Python venv of the Python livekit-agents test (test/livekit/python-agent.test.ts): PyPI's
# livekit-agents core (pinned in test/python/requirements.txt; no plugins, no torch, about 400 MB), nothing else.
# Packages come from PyPI through pip only; on Debian, a python3 without the venv module gets python3-venv from apt.
# Safe to run again: does nothing when the venv already has the pinned livekit-agents.
#
# usage: scripts/make-python-venv.sh
#   SYNCTALK_AGENTS_VENV   the venv folder (default: .venv-agents in the repository; git-ignored)
#   SYNCTALK_AGENTS_PYTHON the interpreter to make it with, Python >= 3.10 (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SYNCTALK_AGENTS_VENV:-.venv-agents}
PYTHON=${SYNCTALK_AGENTS_PYTHON:-python3}
REQUIREMENTS=test/python/requirements.txt
say() { echo "make-python-venv: $*" >&2; }

pinned=$(sed -n 's/^livekit-agents==//p' "$REQUIREMENTS")
installed() { "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("livekit-agents") != sys.argv[1])' "$pinned" 2>/dev/null; }
if [ -x "$VENV/bin/python" ] && installed; then
  echo "make-python-venv: livekit-agents $pinned already in $VENV"
  exit 0
fi

command -v "$PYTHON" >/dev/null || { say "$PYTHON not found (set SYNCTALK_AGENTS_PYTHON to a Python >= 3.10)"; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { say "$PYTHON is $("$PYTHON" -V 2>&1); livekit-agents needs Python >= 3.10"; exit 1; }
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
installed || { say "$VENV: livekit-agents $pinned did not install"; exit 1; }
echo "make-python-venv: livekit-agents $pinned installed in $VENV"
