#!/usr/bin/env bash
# build.sh [OUT]: rebuild the console's vendored browser code from package-lock.json.
#
# Writes OUT/static/vendor/codemirror.js and parsers.js (+ THIRD-PARTY-LICENSES.txt), embedded in
# the sluice binary, and OUT/testdata/axe/axe.min.js (+ LICENSE.txt), used by the
# browser tests only. OUT defaults to configsvc/webui, i.e. the committed files;
# TestVendorBundlesReproduce builds into a temporary OUT and compares byte for byte.
# Needs Node >= 18 and npm with access to the npm registry; building Sluice does not.
#
# To change a version: edit package.json (exact versions only), run
# `npm install --package-lock-only --ignore-scripts` in this folder, then this script,
# and commit package.json, package-lock.json and the rebuilt files together.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/..}
mkdir -p "$out"
out=$(cd "$out" && pwd)
command -v node >/dev/null && command -v npm >/dev/null || { echo "build.sh: node and npm are needed" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || { echo "build.sh: node >= 18 needed, found $(node --version)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$here/build.mjs" "$here/codemirror.mjs" "$here/parsers.mjs" "$work/"
# --ignore-scripts: no package runs code at install; esbuild finds its binary
# in its platform package (@esbuild/<os>-<arch>) without its install script.
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
node "$work/build.mjs" "$out"
