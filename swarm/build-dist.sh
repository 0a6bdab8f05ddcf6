#!/usr/bin/env bash
# Builds dist/ (`npm run build`) when it is missing or a source is newer than it; what runs from dist/ calls this
# first (the seed of a self-managed lab, the image built from this host's dist/, the CLI). Under a lock: the two
# end-to-end labs start at once, and neither may build over the other's build or read a half-written dist/.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$TOP/dist"
exec 9>"$TOP/dist/.build.lock"
flock 9
if [[ ! -f $TOP/dist/src/cli/main.js || -n $(cd "$TOP" && find src schemas -newer dist/src/cli/main.js -print -quit) ]]; then
  echo "[build-dist $(date +%T)] npm run build (dist/ is missing or a source is newer)" >&2
  (cd "$TOP" && npm run build >/dev/null)
fi
