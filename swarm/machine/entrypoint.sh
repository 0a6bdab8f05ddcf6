#!/bin/sh
# Entrypoint of capstan/machine:dev, a docker-in-docker "machine" (run under tini as PID 1).
# Boot: make /sys and cgroups writable, start dockerd, load the preloaded images, then run the machine's init
# script ONCE (what a cloud machine runs as user data), then keep dockerd in the foreground. Logs go to stdout.
#
# Contract with whoever starts the machine (Capstan's docker provider):
#   /var/lib/capstan/init.sh   copied in before start (not passed as env, so secrets stay out of `docker inspect`);
#                              run with /bin/sh after dockerd answers; its exit code goes to /var/lib/capstan/init.done,
#                              whose existence stops it from running again when the container restarts.
#   /var/lib/docker            a volume (the image declares it): the inner dockerd then uses overlay2.
# Env (all optional):
#   STORAGE_DRIVER   vfs | overlay2 | auto (default: overlay2 unless /var/lib/docker is on overlayfs, then vfs)
#   DOCKERD_BIP      inner docker0 address (default 10.250.0.1/24; must not overlap the outer engine's networks)
#   DOCKERD_POOL     inner default address pool base (default 10.251.0.0/16, split into /24s)
#   DOCKERD_ARGS     extra dockerd flags
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
INIT=/var/lib/capstan/init.sh
DONE=/var/lib/capstan/init.done
log() { echo "[machine $(date +%H:%M:%S)] $*"; }

mkdir -p /var/lib/docker /var/log /run /tmp /etc/docker
[ -e /var/run ] || ln -s /run /var/run

# Without --privileged (impossible on some hosts) Docker mounts /sys and the cgroup v1 hierarchies read-only;
# with CAP_SYS_ADMIN we may flip them to read-write, which the inner dockerd needs.
if awk '$2=="/sys" && $4 ~ /(^|,)ro(,|$)/ {f=1} END{exit !f}' /proc/mounts; then
  mount -o remount,rw /sys || log "WARN: cannot remount /sys rw"
fi
for m in $(awk '$3=="cgroup" && $4 ~ /(^|,)ro(,|$)/ {print $2}' /proc/mounts); do
  # a plain remount,rw is EBUSY on cgroup v1; a bind remount only flips the mount flag
  mount -o remount,bind,rw "$m" || log "WARN: cannot remount $m rw"
done

SD=${STORAGE_DRIVER:-auto}
if [ "$SD" = auto ]; then
  # fs type of the longest mount point holding /var/lib/docker; overlay on overlay does not work
  fstype=$(awk '{ if (index("/var/lib/docker/", ($2=="/" ? "/" : $2 "/"))==1 && length($2)>=l) {l=length($2); t=$3} } END{print t}' /proc/mounts)
  case "$fstype" in overlay* | aufs | "") SD=vfs ;; *) SD=overlay2 ;; esac
fi

# No registry is reachable: Swarm tasks use the local image instead of trying a pull first.
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
log "starting dockerd (storage driver $SD)"
# shellcheck disable=SC2086 # DOCKERD_ARGS is a list of flags
dockerd --host unix:///var/run/docker.sock --pidfile /var/run/docker.pid --storage-driver "$SD" \
  --bip "${DOCKERD_BIP:-10.250.0.1/24}" --default-address-pool "base=${DOCKERD_POOL:-10.251.0.0/16},size=24" \
  $DOCKERD_ARGS >/var/log/dockerd.log 2>&1 &
DPID=$!
trap 'log "stopping"; kill -TERM $DPID; wait $DPID; exit 0' TERM INT

i=0
until docker version >/dev/null 2>&1; do
  i=$((i + 1))
  if ! kill -0 $DPID 2>/dev/null || [ $i -gt 600 ]; then
    log "dockerd failed to start; tail of /var/log/dockerd.log:"
    tail -n 30 /var/log/dockerd.log
    exit 1
  fi
  sleep 0.1
done
log "dockerd up"

for f in /usr/share/capstan/images/*.tar; do
  [ -f "$f" ] && docker load -q -i "$f"
done

if [ -f "$DONE" ]; then
  log "init already ran (exit $(cat "$DONE"))"
elif [ -f "$INIT" ]; then
  log "running init"
  /bin/sh "$INIT"
  rc=$?
  echo "$rc" >"$DONE"
  log "init exited $rc"
else
  log "no init script at $INIT"
fi

wait $DPID
