#!/usr/bin/env bash
# Rebuilds netspec/web/vendor — the graph layout (elkjs) and the editor (CodeMirror 6) used by
# `netspec report --format html` and `netspec serve` — from the npm packages pinned in
# tools/web/package-lock.json, with their licences. The output is deterministic: running this
# again leaves `git status` clean. Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/web"
npm ci --no-audit --no-fund --silent
out=../../netspec/web/vendor
meta=$(mktemp -d)
trap 'rm -rf "$meta"' EXIT
rm -rf "$out" && mkdir -p "$out"
esbuild=node_modules/.bin/esbuild
"$esbuild" layout.entry.js --bundle --minify --format=iife --global-name=ELK --legal-comments=none \
  --log-level=warning --metafile="$meta/layout.json" --outfile="$out/layout.min.js"
"$esbuild" editor.entry.js --bundle --minify --format=iife --global-name=NetspecEditor \
  --legal-comments=none --log-level=warning --metafile="$meta/editor.json" --outfile="$out/editor.min.js"
# The same layout engine as a Web Worker script, for `netspec serve` (its page lays out graphs
# off the main thread, so typing never waits on a layout).
cp node_modules/elkjs/lib/elk-worker.min.js "$out/elk-worker.min.js"
node licenses.mjs "$meta/layout.json" "$meta/editor.json" > "$out/THIRD_PARTY_LICENSES.txt"
ls -l "$out"
