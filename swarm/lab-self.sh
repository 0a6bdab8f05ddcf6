# The self-managed lab, sourced by swarm/lab.sh (`lab.sh up --self-managed`): no namespaced managers at all. The
# infrastructure engine runs every manager as a machine (capstan/manager:dev: the machine image with Capstan's image
# inside, loaded at boot), starting from one seed that swarm/seed.mjs makes with Capstan's own docker provider and
# tags as a member of the managers group. Capstan is deployed on the seed, the managers group of
# swarm/examples/managers.json (size 3) is committed, the seed is adopted and two more managers are made, each
# running a Capstan replica. Capstan reaches the infrastructure engine over TCP on the lab network
# (tcp://$NET.0.2:2375, unauthenticated: the lab's namespaces have no route out, and CAPSTAN_ALLOW_ENDPOINTS names
# exactly that engine); the host reaches the machines' network $NET.16.0/20 through $NET.0.2.

MANAGER_IMAGE=capstan/manager:dev
infra_tcp() { echo "tcp://$(addr infra):2375"; }

# Running manager machines' addresses, the seed first (oldest first).
self_addrs() {
  local ids
  ids=$(dk infra ps -q --filter label=capstan.group=managers --filter status=running 2>/dev/null) || return 0
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086
  dk infra inspect -f '{{.Created}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $ids | sort | awk '{print $2}'
}

# The Docker CLI of a manager machine (the first that runs): `lab.sh docker node ls`.
self_docker() {
  local id; id=$(dk infra ps -q --filter label=capstan.group=managers --filter status=running | tail -1)
  [[ -n $id ]] || die "no manager machine runs"
  dk infra exec "$id" docker "$@"
}

self_images() {
  local t0 id have ctx
  t0=$(now)
  mkdir -p "$BUILD_DIR"
  CAPSTAN_BUILD_DIR=$BUILD_DIR DOCKER_HOST="unix://$(sock infra)" "$HERE/build-images.sh" >"$LAB/images-machine.log" 2>&1 &
  local mpid=$!
  CAPSTAN_BUILD_ON=private CAPSTAN_BUILD_DIR=$BUILD_DIR DOCKER_HOST="unix://$(sock infra)" "$HERE/build-capstan-image.sh" 2>&1 | tee "$LAB/images-capstan.log" >&2 ||
    { wait "$mpid"; die "building the Capstan image failed"; }
  wait "$mpid" || { cat "$LAB/images-machine.log" >&2; die "building the machine image failed"; }
  # The manager machine: the machine image with capstan:dev inside (its entrypoint loads /usr/share/capstan/images).
  id=$(dk infra image inspect -f '{{.Id}}' capstan:dev)
  have=$(dk infra image inspect -f '{{index .Config.Labels "capstan.embeds"}}' "$MANAGER_IMAGE" 2>/dev/null || true)
  if [[ $have != "$id" ]]; then
    ctx=$LAB/manager-image
    mkdir -p "$ctx"
    dk infra save -o "$ctx/capstan.tar" capstan:dev
    printf 'FROM capstan/machine:dev\nCOPY capstan.tar /usr/share/capstan/images/capstan.tar\nLABEL capstan.embeds=%s\n' "$id" >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 dk infra build -q -t "$MANAGER_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  log "images on infra in $(since "$t0")s"
}

# The managers group's spec for this lab: the example with this lab's infrastructure engine.
self_spec() { jq --arg e "$(infra_tcp)" '.instance.properties.engine = $e' "$HERE/examples/managers.json"; }

self_seed() {
  local seed
  self_spec >"$LAB/managers.json"
  "$HERE/build-dist.sh"
  seed=$("$TOP/node_modules/.bin/node" "$HERE/seed.mjs" "$LAB/managers.json" "$NET.128.0/17") || die "making the seed failed"
  echo "$seed" >"$LAB/seed"
  log "seed manager ${seed:0:12}: waiting for its Swarm"
  local s=$SECONDS
  until dk infra exec "$seed" docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null | grep -qx true; do
    ((SECONDS - s < 120)) || { dk infra logs --tail 30 "$seed" >&2; die "the seed did not start a Swarm within 120 s"; }
    sleep 0.5
  done
}

self_deploy() {
  local seed; seed=$(cat "$LAB/seed")
  umask 077
  [[ -s $LAB/token ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$LAB/token"
  dk infra exec -i "$seed" docker secret create capstan_token - <"$LAB/token" >/dev/null
  printf '[default]\naws_access_key_id = lab\naws_secret_access_key = lab\n' | dk infra exec -i "$seed" docker secret create capstan_aws_credentials - >/dev/null
  dk infra cp "$TOP/stack.yml" "$seed:/tmp/stack.yml"
  dk infra exec -e CAPSTAN_ALLOW_ENDPOINTS="$(infra_tcp)" -e CAPSTAN_IMAGE=capstan:dev -e CAPSTAN_LOG_LEVEL="${CAPSTAN_LOG_LEVEL:-info}" "$seed" \
    docker stack deploy --resolve-image never -c /tmp/stack.yml "$STACK" >/dev/null
}

# WANT manager machines, each Ready and Reachable, each replica answering, exactly one leading.
self_wait() {
  local want=$1 t=${2:-240} s=$SECONDS a out leading n
  while :; do
    n=0 leading=0
    for a in $(self_addrs); do
      out=$(RPC_TIMEOUT=3 rpc_call "$a" manager.status 2>/dev/null) || continue
      n=$((n + 1))
      [[ $(jq -r '.result.leading' <<<"$out") == true ]] && leading=$((leading + 1))
    done
    ((n == want && leading == 1)) && return 0
    ((SECONDS - s < t)) || die "not $want managers with a Capstan replica each within ${t}s (answering: $n, leading: $leading)"
    sleep 1
  done
}

self_up() {
  ip route add "$NET.16.0/20" via "$(addr infra)"
  self_images
  phase images
  self_seed
  phase seed
  self_deploy
  self_wait 1 180
  phase deploy
  rpc_call "$(self_addrs | head -1)" group.commit "{\"spec\":$(cat "$LAB/managers.json")}" | jq -e '.result' >/dev/null || die "committing the managers group failed"
  self_wait 3 300
  phase managers
}
