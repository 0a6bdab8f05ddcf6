#!/usr/bin/env bash
# Builds Capstan's images offline (no registry) on the engine in DOCKER_HOST: each is a root filesystem assembled
# from this host's files and loaded with `docker import`. Idempotent: an image whose comment already records the
# same content hash (of its input files, facts and this script) is kept; while no input file's size, mtime or inode
# changed, the hash itself is reused from $WORK, so a run where nothing changed takes a fraction of a second. Each
# image built is kept as $WORK/NAME-HASH.tar, which another engine (a new lab's) loads instead of building.
#   build-images.sh [NAME ...]     NAME in: busybox machine (default: all, in that order)
# To add an image NAME: write NAME_ref (prints REPO:TAG), NAME_inputs (prints the files that define it, one a line),
# NAME_rootfs DIR (assembles it), optionally NAME_facts (prints other lines that define it, e.g. the hash of an image
# it embeds) and NAME_changes (prints `docker import --change` values); add NAME to IMAGES after what it embeds.
set -euo pipefail
: "${DOCKER_HOST:?set DOCKER_HOST to the engine to build on}"
HERE=$(cd "$(dirname "$0")" && pwd)
SELF=$HERE/$(basename "$0")
WORK=${CAPSTAN_BUILD_DIR:-/tmp/capstan-build}
IMAGES=(busybox machine)
log() { printf '[build-images %(%H:%M:%S)T] %s\n' -1 "$*"; }

# --- busybox: a tiny workload image for Swarm services (tests, examples); the machine preloads it too.
busybox_ref() { echo capstan/busybox:dev; }
busybox_inputs() { echo /usr/bin/busybox; }
busybox_rootfs() {
  local R=$1 a
  mkdir -p "$R/bin" "$R/tmp" "$R/etc"
  chmod 1777 "$R/tmp"
  install -m 0755 /usr/bin/busybox "$R/bin/busybox"
  for a in $(/usr/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$R/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$R/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
}
busybox_changes() { echo 'CMD ["/bin/sh"]'; }

# --- machine: docker-in-docker machine for the `docker` instance provider (see swarm/machine/entrypoint.sh).
machine_ref() { echo capstan/machine:dev; }
machine_inputs() { "$HERE/machine/rootfs.sh" inputs; }
# it embeds the busybox image: a new busybox image means a new machine image. Its content hash, not its image id:
# every engine's import of the same busybox gets another id, and the machine image's hash must not change with it.
machine_facts() { echo "busybox $(content_hash busybox)"; }
machine_rootfs() {
  docker save -o "$WORK/busybox.image.tar" "$(busybox_ref)"
  "$HERE/machine/rootfs.sh" "$1" "$WORK/busybox.image.tar"
}
machine_changes() {
  echo 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'ENTRYPOINT ["/usr/bin/docker-init", "--", "/usr/local/bin/capstan-machine"]'
  # the inner dockerd's data on a volume: overlay2 instead of vfs, and `docker rm -v` frees it
  echo 'VOLUME ["/var/lib/docker"]'
}

facts() { if declare -F "$1_facts" >/dev/null; then "$1_facts"; fi; }

# Size, mtime and inode of each listed file and of the folders holding them (a file added there shows), plus facts.
stat_key() {
  local name=$1 list=$2
  { facts "$name"; stat -L -c '%n %s %Y %i' "$SELF" $(sort -u "$list") $(xargs -n1 dirname <"$list" | sort -u); } | sha256sum | cut -c1-32
}

# sha256 over this script, the facts and the input files' contents (under their paths, relative for this repo's
# files, so that clones elsewhere agree). Cached in $WORK/NAME.* with the stat key of the files it read.
content_hash() {
  local name=$1 cache=$WORK/$1 hash
  if [[ -f $cache.hash && -f $cache.list && $(stat_key "$name" "$cache.list") == $(cat "$cache.key" 2>/dev/null) ]]; then
    cat "$cache.hash"
    return
  fi
  "${name}_inputs" >"$cache.list"
  hash=$({
    sha256sum <"$SELF"
    facts "$name"
    while read -r f; do echo "${f#"$HERE"/} $(sha256sum <"$f")"; done <"$cache.list"
  } | sha256sum | cut -c1-32)
  stat_key "$name" "$cache.list" >"$cache.key"
  echo "$hash" | tee "$cache.hash"
}

build() {
  local name=$1 ref hash current old dir changes=()
  ref=$("${name}_ref")
  hash=$(content_hash "$name")
  current=$(docker image inspect -f '{{.Comment}}' "$ref" 2>/dev/null || true)
  old=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  if [[ $current == "capstan-content-hash=$hash" ]]; then
    log "$ref is up to date ($hash)"
    return
  fi
  local t0=$SECONDS
  # built before (for another engine: a new lab's): load that instead of assembling it again
  if [[ -f $WORK/$name-$hash.tar ]]; then
    docker load -q -i "$WORK/$name-$hash.tar" >/dev/null
    [[ -z $old ]] || docker rmi "$old" >/dev/null 2>&1 || true
    log "loaded $ref ($hash) from $WORK/$name-$hash.tar in $((SECONDS - t0)) s"
    return
  fi
  dir=$WORK/$name.rootfs
  rm -rf "$dir"; mkdir -p "$dir"
  "${name}_rootfs" "$dir"
  if declare -F "${name}_changes" >/dev/null; then
    while read -r line; do changes+=(--change "$line"); done < <("${name}_changes")
  fi
  tar -C "$dir" --numeric-owner -cf - . | docker import "${changes[@]}" -m "capstan-content-hash=$hash" - "$ref" >/dev/null
  rm -rf "$dir"
  # kept for the next engine; one per image
  rm -f "$WORK/$name"-*.tar
  docker save -o "$WORK/$name-$hash.tar.tmp" "$ref" && mv "$WORK/$name-$hash.tar.tmp" "$WORK/$name-$hash.tar"
  # the replaced image, unless a container still uses it
  [[ -z $old ]] || docker rmi "$old" >/dev/null 2>&1 || true
  log "built $ref ($hash) in $((SECONDS - t0)) s"
}

# The host files the images are made of (busybox-static, tini, docker.io, iptables) come from swarm/requirements.sh;
# callers that run builds in parallel (swarm/lab.sh) have run it first, so here it finds nothing missing.
"$HERE/requirements.sh"
mkdir -p "$WORK"
exec 8>"$WORK/.lock"
flock 8 # parallel callers build once
for name in "${@:-${IMAGES[@]}}"; do
  declare -F "${name}_ref" >/dev/null || { echo "unknown image $name (known: ${IMAGES[*]})" >&2; exit 2; }
  build "$name"
done
