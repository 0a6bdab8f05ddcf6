#!/usr/bin/env bash
# The tests' own Docker engine: one dockerd (Swarm manager) under $CAPSTAN_TEST_ENGINE.
#   engine.sh start   install docker.io if missing, start dockerd, init the Swarm, build the images (idempotent)
#   engine.sh stop    leave nothing behind: daemon, containers, files
set -euo pipefail
ROOT=${CAPSTAN_TEST_ENGINE:-/tmp/capstan-engine}
SOCK=$ROOT/docker.sock
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
log() { printf '[engine %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
ping() { curl -sf --max-time 2 --unix-socket "$SOCK" http://x/_ping >/dev/null 2>&1; }
dk() { docker -H "unix://$SOCK" "$@"; }

start() {
  mkdir -p "$ROOT"
  exec 9>"$ROOT.lock"; flock 9   # parallel test runs share one engine
  if ! command -v dockerd >/dev/null; then
    log "installing docker.io"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  if ! ping; then
    [[ -S /run/containerd/containerd.sock ]] && log "warning: a system containerd is running; dockerd will share it"
    mkdir -p "$ROOT/data" "$ROOT/exec"
    log "starting dockerd at $SOCK"
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
      --pidfile "$ROOT/docker.pid" -H "unix://$SOCK" </dev/null >"$ROOT/dockerd.log" 2>&1 9>&- &
    for _ in $(seq 1 150); do ping && break; sleep 0.2; done
    ping || { tail -20 "$ROOT/dockerd.log" >&2; log "dockerd did not start"; exit 1; }
  fi
  if [[ $(dk info -f '{{.Swarm.LocalNodeState}}') != active ]]; then
    # Machines (containers on this engine) reach the manager through docker0.
    addr=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
    dk swarm init --advertise-addr "$addr" >/dev/null
    log "swarm initialised, manager at $addr:2377"
  fi
  if [[ -x $TOP/swarm/build-images.sh ]]; then DOCKER_HOST="unix://$SOCK" "$TOP/swarm/build-images.sh" >&2; fi
  echo "unix://$SOCK"
}

stop() {
  [[ -d $ROOT ]] || return 0
  if ping; then
    ids=$(dk ps -aq 2>/dev/null || true)
    [[ -z $ids ]] || dk rm -f -v $ids >/dev/null 2>&1 || true
    dk swarm leave --force >/dev/null 2>&1 || true
  fi
  if [[ -f $ROOT/docker.pid ]]; then
    p=$(cat "$ROOT/docker.pid"); kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  fi
  awk -v r="$ROOT/" 'index($5,r)==1{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$ROOT" "$ROOT.lock"
  log "stopped"
}

case ${1:-} in start) start ;; stop) stop ;; *) echo "usage: $0 start|stop" >&2; exit 2 ;; esac
