# Body of the Swarm flavors' first-boot init script, the same for every machine: label this engine with its link id
# and join the Swarm (or, for the seed of a self-managed control plane, start a new one). Runs once, at first boot,
# under any POSIX sh (busybox included). Never prints the join token.
# src/flavors/swarm-init.ts renders what comes before it: the shebang, these variables as single-quoted assignments,
# and the flavor's fragments as the functions capstan_before and capstan_after.
#   CAPSTAN_ROLE            worker | manager
#   CAPSTAN_GROUP_ID        the group id
#   CAPSTAN_LINK_ID         the instance's link id
#   CAPSTAN_LINK_LABEL      capstan.instance=<link id>, the label Capstan finds the node by
#   CAPSTAN_LABELS          every engine label, as a JSON array of "key=value" strings
#   CAPSTAN_JOIN_ADDRS      the managers to join through (host:port), one a line
#   CAPSTAN_JOIN_ATTEMPTS   how many joins to try, 3 s apart
#   CAPSTAN_ADVERTISE_ADDR  docker swarm join --advertise-addr; empty: Docker's choice
#   CAPSTAN_PREPULL         images to pull before joining, one a line (may be empty)
#   CAPSTAN_TOKEN           the join token; unset once joined
#   CAPSTAN_NEW_SWARM       empty, or: join nothing, start a new Swarm with this default address pool (the seed)
log() { echo "[capstan-init $(date +%H:%M:%S)] $*"; }
fail() { log "ERROR: $*"; exit 1; }
nap() { sleep "$1" 2>/dev/null || sleep 1; }

n=0
until docker version >/dev/null 2>&1; do
  n=$((n + 1)); [ $n -ge 600 ] && fail "dockerd is not answering"; nap 0.2
done

capstan_before

# Engine labels, so Capstan can tell which Swarm node this machine became; set before joining so the node has them.
# The JSON goes through printf %s and awk's ENVIRON only: both keep its bytes (awk -v and sub() would not).
f=/etc/docker/daemon.json
mkdir -p /etc/docker
if [ ! -s "$f" ] || [ "$(tr -d ' \t\r\n' <"$f")" = '{}' ]; then
  printf '{"labels":%s}\n' "$CAPSTAN_LABELS" >"$f" || fail "cannot write $f"
elif grep -q '"labels"' "$f"; then
  fail "$f already sets labels; add $CAPSTAN_LINK_LABEL there instead"
else
  CAPSTAN_LABELS=$CAPSTAN_LABELS awk '
    !done && (i = index($0, "{")) { printf "%s\"labels\":%s,%s\n", substr($0, 1, i), ENVIRON["CAPSTAN_LABELS"], substr($0, i + 1); done = 1; next }
    { print }
  ' "$f" >"$f.capstan" && mv "$f.capstan" "$f" || fail "cannot edit $f"
fi
if [ -s /var/run/docker.pid ]; then
  kill -HUP "$(cat /var/run/docker.pid)"
else
  systemctl reload docker
fi || fail "cannot reload dockerd"
n=0
until docker info --format '{{json .Labels}}' 2>/dev/null | grep -qF "\"$CAPSTAN_LINK_LABEL\""; do
  n=$((n + 1)); [ $n -ge 150 ] && fail "dockerd did not take the labels in $f"; nap 0.2
done
log "engine labelled $CAPSTAN_LINK_LABEL"

# Images the machine's tasks will need, pulled before it joins: once it is a node (a warm one too), a task of them
# starts without a pull. A failed pull is logged and does not stop the join (the task would then pull it itself).
set -f; IFS='
'; for image in $CAPSTAN_PREPULL; do
  if out=$(docker pull -q "$image" 2>&1); then log "pulled $image"; else log "could not pull $image: $out"; fi
done; unset IFS; set +f

state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
swarm_join() {
  if [ -n "$CAPSTAN_ADVERTISE_ADDR" ]; then
    docker swarm join --token "$CAPSTAN_TOKEN" --advertise-addr "$CAPSTAN_ADVERTISE_ADDR" "$1"
  else
    docker swarm join --token "$CAPSTAN_TOKEN" "$1"
  fi
}
if [ -n "$CAPSTAN_NEW_SWARM" ]; then
  # The seed of a self-managed control plane: there is no Swarm to join yet.
  set -- --default-addr-pool "$CAPSTAN_NEW_SWARM"
  [ -n "$CAPSTAN_ADVERTISE_ADDR" ] && set -- "$@" --advertise-addr "$CAPSTAN_ADVERTISE_ADDR"
  out=$(docker swarm init "$@" 2>&1) || fail "could not start a new Swarm: $out"
  log "started a new Swarm: this engine is its first manager"
else
  # Each attempt tries the next manager: the one that was leader when this script was written may be gone.
  set -f; IFS='
'; set -- $CAPSTAN_JOIN_ADDRS; unset IFS; set +f
  n=0
  until [ "$(state)" = active ] || [ "$(state)" = pending ]; do
    n=$((n + 1)); [ $n -gt "$CAPSTAN_JOIN_ATTEMPTS" ] && fail "could not join the Swarm through $*"
    addr=$1; shift; set -- "$@" "$addr"
    if out=$(swarm_join "$addr" 2>&1); then
      log "$out"
    else
      log "join attempt $n through $addr failed: $out"; nap 3
    fi
  done
  unset CAPSTAN_TOKEN
  log "joined the Swarm as a $CAPSTAN_ROLE"
fi

capstan_after
