#!/usr/bin/env bash
# Installs a packed synctalk-live (the tarball of `npm pack`) into a fresh folder, as a user's project would:
# the package and its dependencies from the npm registry (npm's cache first), and the same install-script
# policy as the repository (its package.json `allowScripts`: no NuGet download by onnxruntime-node's
# postinstall; ONNXRUNTIME_NODE_INSTALL=skip does the same for npm older than 11.16).
#
# usage: deploy/install-package.sh <synctalk-live-X.Y.Z.tgz> <dir> [package@range ...]
#   <dir>             created if missing; gets package.json and node_modules/ (the worker runs from
#                     <dir>/node_modules/synctalk-live/dist/workers/*.js, the CLI is <dir>/node_modules/.bin/synctalk-live)
#   package@range     more dependencies of that project (e.g. livekit-client@2.22.0 for the test page)
#
# The container recipes (deploy/*.Containerfile) install the workers with it, and test/package.test.ts builds
# its test project with it. The last line says what was installed.
set -euo pipefail

tarball=${1:?usage: $0 <synctalk-live.tgz> <dir> [package@range ...]}
dir=${2:?usage: $0 <synctalk-live.tgz> <dir> [package@range ...]}
shift 2
[ -f "$tarball" ] || { echo "install-package: no such tarball: $tarball" >&2; exit 2; }
tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")
mkdir -p "$dir"
cd "$dir"

# package.json of the project: the tarball, the extra packages, and the package's own allowScripts
tar -xzOf "$tarball" package/package.json | node --input-type=module -e '
import { readFileSync, writeFileSync } from "node:fs";
const ours = JSON.parse(readFileSync(0, "utf8"));
const [tarball, ...extra] = process.argv.slice(1);
const dependencies = { [ours.name]: `file:${tarball}` };
for (const spec of extra) {
  const at = spec.lastIndexOf("@");
  if (at <= 0) throw new Error(`install-package: not package@range: ${spec}`);
  dependencies[spec.slice(0, at)] = spec.slice(at + 1);
}
const project = { name: "synctalk-live-install", private: true, type: "module", dependencies, allowScripts: ours.allowScripts ?? {} };
writeFileSync("package.json", JSON.stringify(project, null, 2) + "\n");
' "$tarball" "$@"

export ONNXRUNTIME_NODE_INSTALL=skip
npm install --prefer-offline --no-audit --no-fund --loglevel=error
echo "install-package: $(node -p 'require("./node_modules/synctalk-live/package.json").version') installed in $(pwd)"
