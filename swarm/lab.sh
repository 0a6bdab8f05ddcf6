#!/usr/bin/env bash
# Capstan's local lab: a real multi-manager Docker Swarm on this one Linux host, with Capstan deployed on it.
#
#   lab.sh up [N]          N managers (default 3), images built and loaded, secrets, stack deployed, API answering
#   lab.sh up --self-managed   no namespaced managers: every manager is a machine Capstan made, from one seed
#                          (swarm/lab-self.sh); NODE below may then be a manager machine's address
#   lab.sh down            tear everything down and verify that nothing is left (processes, netns, mounts, files)
#   lab.sh status          nodes, Capstan's tasks, each replica's manager.status
#   lab.sh env [NODE]      shell exports for NODE (n1.. or infra): DOCKER_HOST, CAPSTAN_URL, CAPSTAN_TOKEN_FILE
#   lab.sh kill NODE [SIG] kill NODE's dockerd (default SIGKILL; its containers live on as orphans, as on a real crash)
#   lab.sh start NODE      (re)start NODE's dockerd
#   lab.sh rpc METHOD [JSON-PARAMS] [NODE]   call the API (with the token) on NODE (default: the first that answers)
#   lab.sh deploy          (re)build images as needed and redeploy the stack
#   lab.sh addr NODE       NODE's address on the lab network
#   lab.sh how             how to reach the API (printed by `up`)
#   lab.sh clean           remove the image build cache (CAPSTAN_BUILD_DIR) that `down` keeps
#   lab.sh docker ARGS     (self-managed) the Docker CLI of a manager machine
#
# Environment: LAB (state dir, default /tmp/capstan-lab), LAB_PREFIX (netns/interface prefix, default clab),
# LAB_NET (first two octets of the lab's 10.x/16, default 10.77), CAPSTAN_BUILD_DIR (image build cache, shared by
# labs and kept by `down`: the last Capstan image as a tar, so a new lab loads it instead of building; default
# /var/cache/capstan/build; `lab.sh clean` removes it). `up` stores them in $LAB/lab.env; later commands read them.
#
# Layout. One dockerd per network namespace (a Swarm needs one engine per address), each in a private mount + UTS
# namespace too (own hostname, own /etc/docker/key.json, hence its own engine ID):
#   netns $P-br      bridge br0, the lab's "switch" ($NET.0.0/24). It is not in the host's netns, where
#                    br_netfilter and the FORWARD DROP policy of a host dockerd would drop bridged traffic.
#   host veth $P-h   $NET.0.1: the host reaches every node directly (curl http://$NET.0.11:8640/...), no nsenter needed.
#   netns $P-nK      manager nK at $NET.0.(10+K), Swarm advertise address; Capstan's replica publishes 8640 there.
#   netns $P-infra   $NET.0.2, the "infrastructure engine" that runs the machines (capstan/machine:dev containers)
#                    of worker groups: a dockerd of its own, not one of the managers, so machines outlive any manager
#                    (a killed leader does not take machines with it, and the new leader sees the same machines), as
#                    with a cloud API. Its docker0 is $NET.16.0/20 with masquerading off, and every manager routes
#                    $NET.16.0/20 via $NET.0.2: machines and managers reach each other at their real addresses (the
#                    machine joins the leader's $NET.0.1x:2377 and advertises its own $NET.16.x), like machines in
#                    one VPC. Capstan reaches this engine through its socket, bind-mounted into the service at
#                    /run/capstan-infra/docker.sock by a lab-only compose overlay ($LAB/stack.lab.yml); no TCP socket.
# No namespace has a default route: nothing in the lab reaches beyond $NET.0.0/16.
# $LAB/self is an empty directory on the host; in node X's mount namespace it is a bind mount of $LAB/X/sock, so the
# single path $LAB/self/docker.sock is "my own engine's socket" on every node: stack.yml's CAPSTAN_DOCKER_SOCK.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
LAB=${LAB:-/tmp/capstan-lab}
LAB=${LAB%/}
if [[ -f $LAB/lab.env ]]; then source "$LAB/lab.env"; fi
P=${LAB_PREFIX:-clab}
NET=${LAB_NET:-10.77}
N=${LAB_MANAGERS:-3}
SELF=${LAB_SELF:-0}
BUILD_DIR=${CAPSTAN_BUILD_DIR:-/var/cache/capstan/build}
STACK=${LAB_STACK:-capstan}
API=v1.41
INFRA_SOCK_IN_SERVICE=/run/capstan-infra/docker.sock

log() { printf '[lab %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

managers() { local k; for ((k = 1; k <= N; k++)); do echo "n$k"; done; }
# Where Capstan's API answers: the namespaced managers, or in a self-managed lab the manager machines' addresses.
api_nodes() { if ((SELF)); then self_addrs; else managers; fi; }
nodes() { managers; echo infra; }
addr() { case $1 in infra) echo "$NET.0.2" ;; n[0-9]*) echo "$NET.0.$((10 + ${1#n}))" ;; [0-9]*.*) echo "$1" ;; *) die "unknown node $1" ;; esac; }
ns() { echo "$P-$1"; }
sock() { echo "$LAB/$1/sock/docker.sock"; }
dk() { local n=$1; shift; docker -H "unix://$(sock "$n")" "$@"; }
api() { curl -sf --max-time "${3:-5}" --unix-socket "$(sock "$1")" "http://x/$API$2"; }
ping_node() { curl -sf --max-time 2 --unix-socket "$(sock "$1")" http://x/_ping >/dev/null 2>&1; }
# NODE's dockerd pid from its pid file, only while that process is NODE's dockerd (its command line names NODE's dir)
dpid() {
  local p; p=$(cat "$LAB/$1/docker.pid" 2>/dev/null) || return 0
  [[ $p =~ ^[0-9]+$ ]] && { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$LAB/$1/" && echo "$p"
  return 0
}
alive() { local p; p=$(dpid "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }
netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
token() { cat "$LAB/token"; }

wait_ping() { # node timeout
  local n=$1 t=${2:-60} s lp; s=$SECONDS; lp=$(cat "$LAB/$n/launcher.pid" 2>/dev/null || true)
  until ping_node "$n"; do
    if [[ -n $lp ]] && ! kill -0 "$lp" 2>/dev/null; then tail -20 "$LAB/$n/dockerd.log" >&2; die "dockerd $n died"; fi
    ((SECONDS - s < t)) || die "dockerd $n not answering after ${t}s"
    sleep 0.2
  done
}

dockerd_flags() {
  if [[ $1 == infra ]]; then
    # Machines get routable addresses: no masquerading, a bridge range of its own, user networks inside $NET too.
    echo "--bip $NET.16.1/20 --ip-masq=false --default-address-pool base=$NET.32.0/19,size=24"
    ((SELF)) && echo "-H tcp://$NET.0.2:2375" # the managers' Capstan reaches it over the lab network
  fi
}

start_daemon() { # node
  local n=$1 d=$LAB/$1
  mkdir -p "$d/data" "$d/exec" "$d/sock" "$d/etc-docker" "$d/.cg" "$d/tmp"
  [[ -f $d/etc-docker/daemon.json ]] || echo '{}' >"$d/etc-docker/daemon.json"
  # `ip netns exec` would remount /sys and lose /sys/fs/cgroup (dockerd: "Devices cgroup isn't mounted"), hence a new
  # mount + UTS namespace, nsenter into the node's netns, a fresh sysfs with the cgroup tree moved back on top.
  # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: Swarm tasks use the local image and never try a registry.
  # TMPDIR: containerd writes stack dumps there when dockerd restarts it.
  # shellcheck disable=SC2016,SC2046
  TMPDIR="$d/tmp" DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 \
    setsid unshare --mount --uts --propagation slave -- nsenter --net="/run/netns/$(ns "$n")" -- \
    sh -c 'set -e; n=$1 d=$2 lab=$3; shift 3
           hostname "$n"
           mount --rbind /sys/fs/cgroup "$d/.cg"
           mount -t sysfs sysfs /sys
           mount --move "$d/.cg" /sys/fs/cgroup
           mount --bind "$d/sock" "$lab/self"
           mount --bind "$d/etc-docker" /etc/docker
           exec dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/docker.pid" \
                --config-file /etc/docker/daemon.json -H "unix://$lab/self/docker.sock" "$@"' \
    sh "$n" "$d" "$LAB" $(dockerd_flags "$n") </dev/null >>"$d/dockerd.log" 2>&1 8>&- 9>&- &
  echo $! >"$d/launcher.pid"
  disown $! 2>/dev/null || true
}

# shellcheck source=lab-self.sh
source "$HERE/lab-self.sh"

infra_forwarding() {
  # dockerd's FORWARD policy is DROP and it only lets replies into docker0; managers must reach machines (Swarm
  # dials workers back for overlay gossip) and machines the managers, both without NAT.
  ip netns exec "$(ns infra)" iptables -C DOCKER-USER -i eth0 -o docker0 -j ACCEPT 2>/dev/null ||
    ip netns exec "$(ns infra)" iptables -I DOCKER-USER -i eth0 -o docker0 -j ACCEPT
}

stop_pid() { # pid timeout: TERM, wait, KILL
  local p=$1 t=${2:-30} i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < t * 5; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
  log "pid $p still alive after ${t}s: SIGKILL"
  kill -KILL "$p" 2>/dev/null || true
}

preflight() {
  [[ $EUID -eq 0 ]] || die "must run as root"
  [[ -e $LAB ]] && die "$LAB exists (run '$0 down' first)"
  local n
  for n in br $(nodes); do netns_exists "$(ns "$n")" && die "netns $(ns "$n") exists"; done
  ip link show "$P-h" >/dev/null 2>&1 && die "interface $P-h exists"
  ip -4 route show | grep -q "^$NET\.0\.0/24" && die "$NET.0.0/24 is already routed on this host (another lab? set LAB_NET)"
  [[ $N =~ ^[1-9][0-9]?$ ]] || ((SELF)) || die "N must be 1..99"
  # dockerd 20.10 silently uses a system containerd if this socket exists: all nodes would share it.
  [[ -S /run/containerd/containerd.sock ]] && die "/run/containerd/containerd.sock exists; every lab dockerd would share that containerd"
  [[ -d /etc/docker ]] || mkdir -p /etc/docker # bind-mount point
}

network_up() {
  local n br; br=$(ns br)
  ip netns add "$br"
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
  ip link add "$P-h" type veth peer name host netns "$br"
  ip -n "$br" link set host master br0 up
  ip addr add "$NET.0.1/24" dev "$P-h"
  ip link set "$P-h" up
  for n in $(nodes); do
    ip netns add "$(ns "$n")"
    ip -n "$br" link add "v-$n" type veth peer name eth0 netns "$(ns "$n")"
    ip -n "$br" link set "v-$n" master br0 up
    ip -n "$(ns "$n")" link set lo up
    ip -n "$(ns "$n")" addr add "$(addr "$n")/24" dev eth0
    ip -n "$(ns "$n")" link set eth0 up
    [[ $n == infra ]] || ip -n "$(ns "$n")" route add "$NET.16.0/20" via "$(addr infra)"
  done
}

swarm_up() {
  local first=n1 mtok n want s
  dk "$first" swarm init --advertise-addr "$(addr "$first")" --listen-addr "$(addr "$first"):2377" \
    --default-addr-pool "$NET.128.0/17" >/dev/null
  mtok=$(dk "$first" swarm join-token -q manager)
  for n in $(managers); do
    [[ $n == "$first" ]] && continue
    dk "$n" swarm join --token "$mtok" --advertise-addr "$(addr "$n")" --listen-addr "$(addr "$n"):2377" "$(addr "$first"):2377" >/dev/null
  done
  want=$N s=$SECONDS
  until [[ $(api "$first" /nodes | jq '[.[]|select(.Status.State=="ready" and .ManagerStatus.Reachability=="reachable")]|length' 2>/dev/null || echo 0) == "$want" ]]; do
    ((SECONDS - s < 90)) || die "managers not ready after 90s"
    sleep 0.2
  done
}

# Each image where it runs: capstan:dev on every manager (the global service), capstan/machine:dev (and the
# capstan/busybox:dev it embeds) on the infrastructure engine, which alone runs machines. No registry: built
# locally, `docker load`ed onto each engine; a second run with nothing changed takes about a second.
images() {
  local t0 n others=() rc=0
  t0=$(now)
  mkdir -p "$BUILD_DIR"
  for n in $(managers); do [[ $n == n1 ]] || others+=("unix://$(sock "$n")"); done
  # both builds at once: the machine image is host files only, the Capstan image mostly waits on npm
  CAPSTAN_BUILD_DIR=$BUILD_DIR DOCKER_HOST="unix://$(sock infra)" "$HERE/build-images.sh" >"$LAB/images-machine.log" 2>&1 &
  local mpid=$!
  CAPSTAN_BUILD_ON=private CAPSTAN_BUILD_DIR=$BUILD_DIR DOCKER_HOST="unix://$(sock n1)" "$HERE/build-capstan-image.sh" "${others[@]}" 2>&1 | tee "$LAB/images-capstan.log" >&2 || rc=1
  wait "$mpid" || { cat "$LAB/images-machine.log" >&2; die "building the machine image failed"; }
  ((rc == 0)) || die "building the Capstan image failed"
}

secrets() {
  local m=n1
  umask 077
  [[ -s $LAB/token ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$LAB/token"
  chmod 600 "$LAB/token"
  dk "$m" secret inspect capstan_token >/dev/null 2>&1 || dk "$m" secret create capstan_token "$LAB/token" >/dev/null
  if ! dk "$m" secret inspect capstan_aws_credentials >/dev/null 2>&1; then
    # The lab has no AWS; the secret must exist (the stack declares it) and be non-empty.
    if [[ -n ${LAB_AWS_CREDENTIALS:-} ]]; then dk "$m" secret create capstan_aws_credentials "$LAB_AWS_CREDENTIALS" >/dev/null
    else printf '[default]\naws_access_key_id = lab\naws_secret_access_key = lab\n' | dk "$m" secret create capstan_aws_credentials - >/dev/null; fi
  fi
}

deploy() {
  local m=n1
  # Lab-only overlay: the infrastructure engine's socket (the same host path on every node).
  cat >"$LAB/stack.lab.yml" <<EOF
version: "3.8"
services:
  capstan:
    environment:
      CAPSTAN_LOG_LEVEL: \${CAPSTAN_LOG_LEVEL:-info}
      CAPSTAN_ALLOW_ENDPOINTS: unix://$INFRA_SOCK_IN_SERVICE
    volumes:
      - type: bind
        source: $LAB/infra/sock
        target: $(dirname "$INFRA_SOCK_IN_SERVICE")
EOF
  CAPSTAN_DOCKER_SOCK="$LAB/self/docker.sock" CAPSTAN_IMAGE=capstan:dev \
    dk "$m" stack deploy --detach=true --resolve-image never -c "$TOP/stack.yml" -c "$LAB/stack.lab.yml" "$STACK" >/dev/null
}

rpc_call() { # node method params -> prints the JSON answer
  local params=${3:-}
  curl -sS --max-time "${RPC_TIMEOUT:-35}" -H "Authorization: Bearer $(token)" -H 'content-type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\"${params:+,\"params\":$params}}" "http://$(addr "$1"):8640/rpc"
}

# Every manager's replica answers, all name the same leader, and exactly one leads.
wait_api() {
  local t=${1:-180} s=$SECONDS n out leading leaders ok
  while :; do
    ok=1 leading=0 leaders=""
    for n in $(managers); do
      out=$(RPC_TIMEOUT=3 rpc_call "$n" manager.status 2>/dev/null) || { ok=0; break; }
      [[ $(jq -r '.result.leading' <<<"$out") == true ]] && leading=$((leading + 1))
      leaders+="$(jq -r '.result.leaderNodeId // "none"' <<<"$out") "
    done
    if ((ok)) && ((leading == 1)) && [[ $(tr ' ' '\n' <<<"$leaders" | grep -v '^$' | sort -u | wc -l) == 1 && $leaders != *none* ]]; then return 0; fi
    if ((SECONDS - s >= t)); then
      dk n1 service ps "${STACK}_capstan" --no-trunc >&2 || true
      die "the API did not answer on every manager with one leader within ${t}s"
    fi
    sleep 1
  done
}

# phase NAME: logs the time since the previous phase and keeps it in $LAB/phases (swarm/up.sh prints them)
phase() { local t; t=$(since "$PHASE_T"); log "$1: ${t}s"; echo "$1=${t}s" >>"$LAB/phases"; PHASE_T=$(now); }

cmd_up() {
  local a
  for a in "$@"; do case $a in --self-managed) SELF=1 N=0 ;; [0-9]*) N=$a ;; *) die "up: unknown argument $a" ;; esac; done
  local t0 n; t0=$(now)
  # every tool below (and in the image builds, which run in parallel) is installed here, before anything starts
  "$HERE/requirements.sh"
  preflight
  mkdir -p "$LAB/self"
  chmod 700 "$LAB"
  PHASE_T=$t0
  printf 'LAB_PREFIX=%q\nLAB_NET=%q\nLAB_MANAGERS=%q\nCAPSTAN_BUILD_DIR=%q\nLAB_STACK=%q\nLAB_SELF=%q\n' "$P" "$NET" "$N" "$BUILD_DIR" "$STACK" "$SELF" >"$LAB/lab.env"
  [[ ${KEEP_ON_FAIL:-0} == 1 ]] || trap 'rc=$?; trap - EXIT; log "up failed: tearing down (KEEP_ON_FAIL=1 keeps the wreck)"; cmd_down >&2 || true; exit $rc' EXIT
  [[ -d /run/netns ]] || touch "$LAB/.created-run-netns"
  log "network $NET.0.0/24 (host $NET.0.1), $N managers, infrastructure engine at $(addr infra)"
  network_up
  for n in $(nodes); do start_daemon "$n"; done
  for n in $(nodes); do wait_ping "$n" 60; done
  infra_forwarding
  phase daemons
  if ((SELF)); then
    self_up
    trap - EXIT
    log "UP (self-managed) in $(since "$t0")s"
    [[ ${LAB_HOW:-1} == 0 ]] || cmd_how
    return
  fi
  swarm_up
  phase swarm
  images
  phase images
  secrets
  deploy
  phase deploy
  wait_api 180
  phase api
  trap - EXIT
  log "UP in $(since "$t0")s"
  [[ ${LAB_HOW:-1} == 0 ]] || cmd_how
}

cmd_how() {
  local first cli; first=$(api_nodes | head -1)
  cli="$TOP/node_modules/.bin/node $TOP/dist/src/cli/main.js"
  if grep -qs 'capstan launcher written by' "$(command -v capstan 2>/dev/null || echo /nonexistent)"; then cli=capstan; fi
  cat <<EOF

Capstan answers on every manager ($(for n in $(api_nodes); do printf '%s ' "$(addr "$n"):8640"; done)) straight from this host.
This line sets CAPSTAN_URL, CAPSTAN_TOKEN_FILE, DOCKER_HOST (manager $first) and T (the token), which the README's
curl session, the capstan CLI and the Docker CLI use:
  eval "\$($0 env $first)"; T=\$(cat "\$CAPSTAN_TOKEN_FILE")
  curl -s "\$CAPSTAN_URL/rpc" -H "Authorization: Bearer \$T" -d '{"jsonrpc":"2.0","id":1,"method":"manager.status"}'
  $cli group list
  $(if ((SELF)); then echo "$0 docker node ls        (the Docker CLI on a manager machine)"; else echo "docker node ls"; fi)                  (the machines: eval "\$($0 env infra)"; docker ps)
Or without the line: $0 rpc group.list '{}'. Tear down: $0 down
EOF
}

# The lab's processes are the ones its pid files name: each node's launcher and dockerd, dockerd's containerd, each
# container's shim (the parent of the process in the container's init.pid; shims outlive their dockerd as
# orphans), the private image build engine. A pid counts only while its command line names the directory the pid
# file belongs to (a pid file left by a process that died may name a reused pid). Each is taken with all its descendants (the containers: Capstan's
# replicas, machines and what runs inside them), and remembered as pid + start time, so that after a parent is gone
# its orphans are still known and a reused pid never is. Nothing is found by searching command lines: a process
# the lab did not start (an operator's `tail -f $LAB/n1/dockerd.log`, a shell in a lab netns) is never stopped.
pid_files() { # prints "FILE DIR [parent]": a pid file, the directory the command line of that process (or of its
  local n f   # parent, for a container's init.pid: the shim) must name
  for n in $(nodes); do
    for f in "$LAB/$n/launcher.pid" "$LAB/$n/docker.pid" "$LAB/$n/exec/containerd/containerd.pid"; do
      [[ -f $f ]] && echo "$f $LAB/$n/"
    done
    for f in "$LAB/$n"/exec/containerd/daemon/io.containerd.runtime.v2.task/*/*/init.pid; do
      [[ -f $f ]] && echo "$f $LAB/$n/ parent"
    done
  done
  f=$BUILD_DIR/capstan-image/engine/docker.pid
  [[ -f $f ]] && echo "$f $BUILD_DIR/capstan-image/engine/"
  return 0
}
proc_start() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; } # field 22
lab_roots() {
  local f dir how p
  while read -r f dir how; do
    p=$(cat "$f" 2>/dev/null) || continue
    [[ $p =~ ^[0-9]+$ ]] || continue
    [[ $how != parent ]] || p=$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ') || continue
    [[ -n $p ]] || continue
    { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir" && echo "$p"
  done < <(pid_files)
  return 0
}
descendants() { local p c; for p in "$@"; do echo "$p"; for c in $(pgrep -P "$p" 2>/dev/null); do descendants "$c"; done; done; }
LAB_PROCS=() # "pid:start" of every lab process seen during this command
remember_lab_procs() {
  local p st roots
  roots=$(lab_roots)
  [[ -n $roots ]] || return 0
  for p in $(descendants $roots | sort -un); do st=$(proc_start "$p") && LAB_PROCS+=("$p:$st"); done
  return 0
}
lab_pids() { # the remembered lab processes still alive
  local e p
  remember_lab_procs
  for e in "${LAB_PROCS[@]}"; do p=${e%%:*}; [[ $(proc_start "$p" 2>/dev/null) == "${e#*:}" ]] && echo "$p"; done | sort -un
  return 0
}
describe_pids() { local p; for p in "$@"; do printf '%s (%s) ' "$p" "$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | cut -c1-60)"; done; }

leave_node() { # remove every container (machines first, on infra), leave the Swarm
  local n=$1 ids
  alive "$n" || return 0
  ping_node "$n" || return 0
  ids=$(timeout 20 docker -H "unix://$(sock "$n")" ps -aq 2>/dev/null || true)
  [[ -z $ids ]] || timeout 90 docker -H "unix://$(sock "$n")" rm -f -v $ids >/dev/null 2>&1 || log "removing containers on $n failed"
  [[ $n == infra ]] || timeout 30 docker -H "unix://$(sock "$n")" swarm leave --force >/dev/null 2>&1 || true
}

cmd_down() {
  local t0 n p pids; t0=$(now)
  remember_lab_procs # before any parent goes: its orphans stay known
  if [[ -d $LAB ]]; then
    local t=$(now)
    leave_node infra
    log "machines removed in $(since "$t")s"; t=$(now)
    for n in $(managers); do leave_node "$n" & done
    wait
    log "managers left the Swarm in $(since "$t")s"; t=$(now)
    for n in $(nodes); do p=$(dpid "$n"); [[ -z $p ]] || stop_pid "$p" 30 & done
    wait
    log "dockerd stopped in $(since "$t")s"
  fi
  pids=$(lab_pids)
  if [[ -n $pids ]]; then
    log "stopping leftover lab processes: $(describe_pids $pids)"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 10); do [[ -z $(lab_pids) ]] && break; sleep 0.2; done
    pids=$(lab_pids)
    if [[ -n $pids ]]; then log "SIGKILL: $(describe_pids $pids)"; for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done; sleep 0.5; fi
  fi
  # Whatever else is inside a lab netns was not started by the lab: named, not stopped (its netns lives on with it).
  local others=()
  for n in br $(nodes); do netns_exists "$(ns "$n")" && others+=($(ip netns pids "$(ns "$n")" 2>/dev/null)); done
  ((${#others[@]} == 0)) || log "not started by the lab, left running in its netns: $(describe_pids "${others[@]}")"
  for n in $(nodes) br; do netns_exists "$(ns "$n")" && ip netns del "$(ns "$n")"; done
  ip link del "$P-h" 2>/dev/null || true # normally gone with its peer in the bridge netns
  if [[ -d $LAB ]]; then
    # the lab's mounts live in the daemons' private mount namespaces; unmount defensively anyway
    awk -v l="$LAB/" 'index($5,l)==1{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
    local rmnetns=0; [[ -f $LAB/.created-run-netns ]] && rmnetns=1
    rm -rf "$LAB"
    if ((rmnetns)) && [[ -d /run/netns && -z $(ls -A /run/netns) ]]; then umount /run/netns 2>/dev/null || true; rmdir /run/netns 2>/dev/null || true; fi
  fi
  verify_clean
  if [[ -d $BUILD_DIR && $BUILD_DIR != "$LAB"/* ]]; then
    log "kept the image build cache $BUILD_DIR ($(du -sh "$BUILD_DIR" 2>/dev/null | cut -f1); '$0 clean' removes it)"
  fi
  log "DOWN in $(since "$t0")s"
}

verify_clean() {
  local bad=0 n
  for n in br $(nodes); do netns_exists "$(ns "$n")" && { log "LEFT: netns $(ns "$n")"; bad=1; }; done
  ip link show "$P-h" >/dev/null 2>&1 && { log "LEFT: interface $P-h"; bad=1; }
  [[ -n $(lab_pids) ]] && { log "LEFT: lab processes $(describe_pids $(lab_pids))"; bad=1; }
  grep -qF " $LAB/" /proc/self/mountinfo && { log "LEFT: mounts under $LAB"; bad=1; }
  [[ -e $LAB ]] && { log "LEFT: $LAB"; bad=1; }
  ((bad == 0)) || die "teardown incomplete: the LEFT lines above name what is still there"
  log "verified: no lab process, netns, interface, mount or file left"
}

cmd_status() {
  local n out
  ((SELF)) && self_docker node ls 2>/dev/null && echo
  for n in $(managers); do
    alive "$n" && ping_node "$n" || continue
    dk "$n" node ls 2>/dev/null || continue
    echo
    dk "$n" service ps "${STACK}_capstan" --filter desired-state=running --format 'table {{.Node}}\t{{.CurrentState}}\t{{.Error}}' 2>/dev/null || true
    break
  done
  echo
  for n in $(api_nodes); do
    out=$(RPC_TIMEOUT=3 rpc_call "$n" manager.status 2>/dev/null | jq -c '.result | {leading, leaderNodeId, nodeId, uptimeSeconds}' 2>/dev/null) || out="(no answer)"
    printf '%-6s %-15s %s\n' "$n" "$(addr "$n")" "$out"
  done
  echo
  if alive infra && ping_node infra; then dk infra ps --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' 2>/dev/null; fi
}

cmd_env() {
  local n=${1:-$(api_nodes | head -1)}
  addr "$n" >/dev/null
  if ((SELF)) && [[ $n != infra ]]; then
    # A manager machine's engine has no socket on the host: DOCKER_HOST stays; `lab.sh docker` runs its CLI.
    echo "export CAPSTAN_URL=http://$(addr "$n"):8640 CAPSTAN_TOKEN_FILE=$LAB/token"
    return
  fi
  echo "export DOCKER_HOST=unix://$(sock "$n")"
  if [[ $n != infra ]]; then echo "export CAPSTAN_URL=http://$(addr "$n"):8640 CAPSTAN_TOKEN_FILE=$LAB/token"; fi
}

cmd_clean() { # the build cache, once no build uses it (the build scripts hold these locks while they run)
  [[ -d $BUILD_DIR ]] || { log "no build cache at $BUILD_DIR"; return 0; }
  local l
  for l in "$BUILD_DIR/.lock" "$BUILD_DIR/capstan-image/.lock"; do [[ -f $l ]] && exec {fd}<"$l" && flock "$fd"; done
  rm -rf "$BUILD_DIR"
  rmdir "$(dirname "$BUILD_DIR")" 2>/dev/null || true
  log "removed the build cache $BUILD_DIR"
}

cmd_kill() { local p; p=$(dpid "$1"); [[ -n $p ]] || die "no pid for $1"; kill -"${2:-KILL}" "$p"; echo "$p"; }

cmd_start() {
  alive "$1" && die "$1 already running"
  start_daemon "$1"
  wait_ping "$1" 60
  [[ $1 == infra ]] && infra_forwarding
  return 0
}

cmd_rpc() { # method [params] [node]
  local m=$1 params=${2:-} n
  if [[ -n ${3:-} ]]; then rpc_call "$3" "$m" "$params"; echo; return; fi
  for n in $(api_nodes); do
    if out=$(rpc_call "$n" "$m" "$params" 2>/dev/null); then echo "$out"; return; fi
  done
  die "no manager answers"
}

[[ $(id -u) == 0 ]] || die "run as root"
case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env "${2:-}" ;;
  kill) cmd_kill "${2:?NODE}" "${3:-KILL}" ;;
  start) cmd_start "${2:?NODE}" ;;
  rpc) cmd_rpc "${2:?METHOD}" "${3:-}" "${4:-}" ;;
  docker) shift; self_docker "$@" ;;
  deploy) images; secrets; deploy; wait_api 180 ;;
  addr) addr "${2:?NODE}" ;;
  how) cmd_how ;;
  clean) cmd_clean ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
