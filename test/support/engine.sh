#!/usr/bin/env bash
# The tests' own Docker engine: one dockerd (Swarm manager) under $CAPSTAN_TEST_ENGINE.
#   engine.sh start   install what is missing (swarm/requirements.sh), start dockerd, init the Swarm, build the
#                     images (idempotent)
#   engine.sh stop    leave nothing behind: daemon, containers, files, the image build cache, and what dockerd did
#                     to the host's network (its bridges, its iptables chains and rules, ip_forward), undone from a
#                     record of the host taken before dockerd started
# The image build cache is $ROOT/build (CAPSTAN_BUILD_DIR for swarm/build-images.sh), so it goes with the engine.
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
  "$TOP/swarm/requirements.sh" # docker.io, and what the image builds below copy (busybox-static, tini)
  if ! ping; then
    [[ -S /run/containerd/containerd.sock ]] && log "warning: a system containerd is running; dockerd will share it"
    mkdir -p "$ROOT/data" "$ROOT/exec"
    record_host
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
  if [[ -x $TOP/swarm/build-images.sh ]]; then CAPSTAN_BUILD_DIR=$ROOT/build DOCKER_HOST="unix://$SOCK" "$TOP/swarm/build-images.sh" >&2; fi
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
  # dockerd leaves its netns bind mounts (exec/netns/*); one may go by itself meanwhile
  awk -v r="$ROOT/" 'index($5,r)==1{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  restore_host
  rm -rf "$ROOT" "$ROOT.lock"
  log "stopped"
}

# What dockerd changes on the host (it runs in the host's network namespace): bridges (docker0, docker_gwbridge,
# br-<id> of user networks), iptables chains and rules in the filter and nat tables, the FORWARD policy (DROP) and
# net.ipv4.ip_forward. record_host keeps the host's state before dockerd starts; restore_host, after dockerd is gone,
# removes what is new and belongs to dockerd (a bridge of those names, a chain or rule naming one of them or DOCKER),
# and sets the policy and ip_forward back. Rules that others added meanwhile are left alone.
DOCKERISH='docker|DOCKER|br-[0-9a-f]{12}'
record_host() {
  ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' >"$ROOT/host.links"
  cat /proc/sys/net/ipv4/ip_forward >"$ROOT/host.ip_forward"
  local t
  for t in filter nat; do iptables-save -t "$t" >"$ROOT/host.$t" 2>/dev/null || true; done
}
restore_host() {
  [[ -f $ROOT/host.links ]] || return 0
  local l t chain policy rule left=()
  for l in $(ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -xE 'docker0|docker_gwbridge|br-[0-9a-f]{12}|veth[0-9a-f]+' || true); do
    grep -qxF "$l" "$ROOT/host.links" || ip link del "$l" 2>/dev/null || left+=("link $l")
  done
  for t in filter nat; do
    [[ -f $ROOT/host.$t ]] || continue
    # new rules in the chains that were there before (the jumps into dockerd's chains, its MASQUERADE rules)
    while read -r rule; do
      grep -qxF -- "$rule" "$ROOT/host.$t" && continue
      chain=${rule#-A }; chain=${chain%% *}
      grep -q "^:$chain " "$ROOT/host.$t" || continue
      # shellcheck disable=SC2086 # dockerd's rules are plain words
      iptables -t "$t" -D ${rule#-A } 2>/dev/null || left+=("iptables -t $t $rule")
    done < <(iptables-save -t "$t" 2>/dev/null | grep -E '^-A ' | grep -E -- "$DOCKERISH" | tac)
    # dockerd's own chains: flushed, then deleted
    for chain in $(iptables-save -t "$t" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | grep -E -- "$DOCKERISH"); do
      grep -q "^:$chain " "$ROOT/host.$t" || iptables -t "$t" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables-save -t "$t" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | grep -E -- "$DOCKERISH"); do
      grep -q "^:$chain " "$ROOT/host.$t" || iptables -t "$t" -X "$chain" 2>/dev/null || left+=("iptables -t $t chain $chain")
    done
    # builtin chains' policies as they were (dockerd sets FORWARD to DROP)
    while read -r chain policy; do
      [[ $policy == - ]] || iptables -t "$t" -P "$chain" "$policy" 2>/dev/null || true
    done < <(sed -n 's/^:\([^ ]*\) \([A-Z-]*\) .*/\1 \2/p' "$ROOT/host.$t")
  done
  cat "$ROOT/host.ip_forward" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
  ((${#left[@]} == 0)) || log "LEFT on the host: ${left[*]}"
}

case ${1:-} in start) start ;; stop) stop ;; *) echo "usage: $0 start|stop" >&2; exit 2 ;; esac
