/**
 * The init script of the Swarm flavors: a POSIX sh script a machine runs once at first boot that labels its engine
 * with the link id and joins the Swarm. Template variables of the flavor properties are substituted here.
 */
import { GROUP_LABEL, INSTANCE_LABEL, type Role } from './swarm-api.js';

export const TEMPLATE_VARIABLES = ['JOIN_ADDR', 'LINK_ID', 'GROUP_ID', 'LOGICAL_ID', 'ROLE', 'CONFIG_HASH'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];
/** {{UPPER_CASE}} is a variable; any other {{...}}, such as a `docker --format` template, is left as it is. */
export const VARIABLE = /\{\{([A-Z][A-Z0-9_]*)\}\}/g;
/** What may be substituted verbatim into a shell script. */
export const SHELL_SAFE = /^[A-Za-z0-9._:@/+=,-]*$/;

/** The properties the script is made from (a part of SwarmFlavorProperties). */
export interface InitProperties {
  readonly advertiseAddr?: string;
  readonly before?: string;
  readonly after?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly joinAttempts?: number;
}

/** The templated properties, by JSON path. */
export function templated(p: InitProperties): [string, string][] {
  const out: [string, string][] = [];
  if (p.before !== undefined) out.push(['/before', p.before]);
  if (p.after !== undefined) out.push(['/after', p.after]);
  for (const [key, value] of Object.entries(p.labels ?? {})) out.push([`/labels/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, value]);
  return out;
}

/** The machine's first-boot script: see the description in schemas/swarm-flavor.json. */
export function renderInit(role: Role, p: InitProperties, vars: Record<TemplateVariable, string>, token: string, addrs: readonly string[] = [vars.JOIN_ADDR]): string {
  const fill = (text: string): string => text.replace(VARIABLE, (_, name: string) => vars[name as TemplateVariable]);
  const labels = [`${INSTANCE_LABEL}=${vars.LINK_ID}`, `${GROUP_LABEL}=${vars.GROUP_ID}`, ...Object.entries(p.labels ?? {}).map(([k, v]) => `${k}=${fill(v)}`)];
  const advertise = p.advertiseAddr === undefined ? '' : ` --advertise-addr '${p.advertiseAddr}'`;
  return `#!/bin/sh
# Capstan swarm-${role} init, group ${vars.GROUP_ID}: label this engine with link ${vars.LINK_ID}, join the Swarm
# through ${addrs.join(', ')}. Runs once, at first boot. Never prints the join token.
log() { echo "[capstan-init $(date +%H:%M:%S)] $*"; }
fail() { log "ERROR: $*"; exit 1; }
nap() { sleep "$1" 2>/dev/null || sleep 1; }

n=0
until docker version >/dev/null 2>&1; do
  n=$((n + 1)); [ $n -ge 600 ] && fail "dockerd is not answering"; nap 0.2
done
${p.before === undefined ? '' : `\n# --- before (flavor properties) ---\n${fill(p.before)}\n# --- end of before ---\n`}
# Engine labels, so Capstan can tell which Swarm node this machine became; set before joining so the node has them.
labels='${labels.map((l) => `"${l}"`).join(',')}'
f=/etc/docker/daemon.json
mkdir -p /etc/docker
if [ ! -s "$f" ] || [ "$(tr -d ' \\t\\r\\n' <"$f")" = '{}' ]; then
  printf '{"labels":[%s]}\\n' "$labels" >"$f" || fail "cannot write $f"
elif grep -q '"labels"' "$f"; then
  fail "$f already sets labels; add ${INSTANCE_LABEL}=${vars.LINK_ID} there instead"
else
  awk -v l="$labels" '!done && sub(/\\{/, "{\\"labels\\":[" l "],") { done = 1 } { print }' "$f" >"$f.capstan" && mv "$f.capstan" "$f" || fail "cannot edit $f"
fi
if [ -s /var/run/docker.pid ]; then
  kill -HUP "$(cat /var/run/docker.pid)"
else
  systemctl reload docker
fi || fail "cannot reload dockerd"
n=0
until docker info --format '{{json .Labels}}' 2>/dev/null | grep -q '"${INSTANCE_LABEL}=${vars.LINK_ID}"'; do
  n=$((n + 1)); [ $n -ge 150 ] && fail "dockerd did not take the labels in $f"; nap 0.2
done
log "engine labelled ${INSTANCE_LABEL}=${vars.LINK_ID}"

state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
token='${token}'
# Each attempt tries the next manager: the one that was leader when this script was written may be gone.
set -- ${addrs.map((a) => `'${a}'`).join(' ')}
n=0
until [ "$(state)" = active ] || [ "$(state)" = pending ]; do
  n=$((n + 1)); [ $n -gt ${p.joinAttempts ?? 10} ] && fail "could not join the Swarm through $*"
  addr=$1; shift; set -- "$@" "$addr"
  if out=$(docker swarm join --token "$token"${advertise} "$addr" 2>&1); then
    log "$out"
  else
    log "join attempt $n through $addr failed: $out"; nap 3
  fi
done
unset token
log "joined the Swarm as a ${role}"
${p.after === undefined ? '' : `\n# --- after (flavor properties) ---\n${fill(p.after)}\n# --- end of after ---\n`}`;
}
