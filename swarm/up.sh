#!/usr/bin/env bash
# The first command: from a fresh checkout on a Debian machine (root), a running Swarm managed by Capstan.
#   swarm/up.sh [WORKERS]    (default 3)
# Installs what is missing (docker.io, jq, curl via apt-get; npm ci; npm run build), brings up the lab
# (swarm/lab.sh up: 3 namespaced managers, an infrastructure engine, images, secrets, the Capstan stack), commits
# swarm/examples/workers.json with that size, waits until that many workers are Ready and shows `docker node ls`.
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

[[ $EUID -eq 0 ]] || die "run as root (the lab creates network namespaces and runs dockerd)"
command -v node >/dev/null || die "Node.js >= 20 is needed (https://nodejs.org); Debian 12's nodejs is 18"
(($(node -p 'process.versions.node.split(".")[0]') >= 20)) || die "Node.js >= 20 is needed, found $(node -v)"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
command -v iptables >/dev/null || missing+=(iptables)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's docker.io starts its own dockerd and containerd; the lab runs its own daemons and refuses to share a
# system containerd (every lab node would use it), so stop those if the package just started them.
if [[ -S /run/containerd/containerd.sock ]] && command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
  log "stopping the system docker and containerd services (the lab runs its own)"
  systemctl stop docker.socket docker containerd 2>/dev/null || true
fi

cd "$TOP"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund >/dev/null
fi
if [[ ! -f dist/src/cli/main.js || -n $(find src schemas -newer dist/src/cli/main.js -print -quit) ]]; then
  log "npm run build"
  npm run build >/dev/null
fi
CLI=(node "$TOP/dist/src/cli/main.js")

if [[ -f $LAB/lab.env ]]; then
  log "lab already up at $LAB: redeploying if anything changed"
  "$HERE/lab.sh" deploy
else
  "$HERE/lab.sh" up
fi
eval "$("$HERE/lab.sh" env n1)"

spec=$(jq --argjson n "$WORKERS" '.allocation.size = $n' "$HERE/examples/workers.json")
log "committing group workers (size $WORKERS)"
"${CLI[@]}" group commit - --watch --timeout 300 <<<"$spec" >/dev/null

ready() { docker node ls --filter role=worker --format '{{.Status}} {{.Availability}}' | grep -c '^Ready Active$' || true; }
s=$SECONDS
until [[ $(ready) == "$WORKERS" ]]; do
  ((SECONDS - s < 120)) || { docker node ls; die "not $WORKERS Ready workers after 120 s"; }
  sleep 1
done
docker node ls
log "done in $((SECONDS - t0)) s: $WORKERS workers Ready"
"$HERE/lab.sh" how
