#!/usr/bin/env bash
# Root filesystem of the machine image capstan/machine:dev, assembled offline from this host's Debian files:
# docker.io 20.10 (dockerd, containerd, runc, docker CLI), iptables (nft), tini, busybox-static, their ldd libraries.
#   rootfs.sh inputs                 the host files it copies, one a line (build-images.sh hashes them)
#   rootfs.sh DIR [IMAGE.tar ...]    assemble into DIR (emptied first); each IMAGE.tar (`docker save`) is
#                                    loaded by the machine's dockerd at boot, so Swarm tasks need no registry
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ARCH_LIB=/usr/lib/x86_64-linux-gnu
BINS=(/usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc /usr/bin/docker
  /usr/sbin/docker-proxy /usr/sbin/xtables-nft-multi)

libraries() {
  # xtables extensions are dlopen()ed, so ldd of iptables does not list them: scan them too.
  for f in "${BINS[@]}" "$ARCH_LIB"/xtables/*.so; do
    ldd "$f" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}'
  done | sort -u
}

inputs() {
  printf '%s\n' "${BINS[@]}" /usr/bin/tini-static /usr/bin/busybox "$HERE/entrypoint.sh" "$HERE/rootfs.sh"
  ls "$ARCH_LIB"/xtables/*.so
  libraries
}

assemble() {
  local R=$1; shift
  rm -rf "$R"; mkdir -p "$R"
  local b lib a
  for b in "${BINS[@]}"; do install -D -m 0755 "$b" "$R$b"; done
  # dockerd looks for docker-init for `--init`; tini also serves as the machine's PID 1.
  install -D -m 0755 /usr/bin/tini-static "$R/usr/bin/docker-init"
  for a in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore iptables-nft ip6tables-nft; do
    ln -s xtables-nft-multi "$R/usr/sbin/$a"
  done
  mkdir -p "$R$ARCH_LIB/xtables"
  cp -a "$ARCH_LIB"/xtables/. "$R$ARCH_LIB/xtables/"
  libraries | while read -r lib; do install -D -m 0755 "$(readlink -f "$lib")" "$R$lib"; done

  install -D -m 0755 /usr/bin/busybox "$R/bin/busybox"
  for a in $(/usr/bin/busybox --list); do
    [[ $a == busybox || -e $R/bin/$a ]] || ln -s busybox "$R/bin/$a"
  done
  ln -s bin "$R/sbin"

  mkdir -p "$R"/{etc/docker,proc,sys,dev,tmp,run,var/lib/docker,var/lib/capstan,var/log,root,usr/local/bin,usr/share/capstan/images}
  chmod 1777 "$R/tmp"
  chmod 0700 "$R/var/lib/capstan"
  ln -s ../run "$R/var/run"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
  printf 'root:x:0:\ndocker:x:999:\n' >"$R/etc/group"
  printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"
  printf 'PRETTY_NAME="Capstan machine (busybox + Debian docker.io)"\nID=capstan-machine\n' >"$R/etc/os-release"
  install -m 0755 "$HERE/entrypoint.sh" "$R/usr/local/bin/capstan-machine"
  for a in "$@"; do install -m 0644 "$a" "$R/usr/share/capstan/images/"; done
}

case ${1:-} in
  inputs) inputs ;;
  '') echo "usage: $0 inputs | DIR [IMAGE.tar ...]" >&2; exit 2 ;;
  *) assemble "$@" ;;
esac
