/**
 * The init script of the Swarm flavors: a POSIX sh script a machine runs once at first boot that labels its engine
 * with the link id and joins the Swarm. Its body is the static file swarm-init.sh; rendering puts before it only
 * single-quoted variable assignments and the flavor's fragments, with their template variables substituted.
 */
import { readFileSync } from 'node:fs';
import { GROUP_LABEL, INSTANCE_LABEL, type Role } from './swarm-api.js';

export const TEMPLATE_VARIABLES = ['JOIN_ADDR', 'LINK_ID', 'GROUP_ID', 'LOGICAL_ID', 'ROLE', 'CONFIG_HASH'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];
/** {{UPPER_CASE}} is a variable; any other {{...}}, such as a `docker --format` template, is left as it is. */
export const VARIABLE = /\{\{([A-Z][A-Z0-9_]*)\}\}/g;
/** What may be substituted verbatim into shell code: a variable's value in the before and after fragments. */
export const SHELL_SAFE = /^[A-Za-z0-9._:@/+=,-]*$/;

/** The static body of the script (shipped beside this module: the build copies src/flavors/*.sh). */
const BODY = readFileSync(new URL('./swarm-init.sh', import.meta.url), 'utf8');

/** The properties the script is made from (a part of SwarmFlavorProperties). */
export interface InitProperties {
  readonly advertiseAddr?: string;
  readonly before?: string;
  readonly after?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly joinAttempts?: number;
  /** Images pulled before the join, so the first task of each runs without a pull. */
  readonly prepull?: readonly string[];
}

/** The templated properties, by JSON path. */
export function templated(p: InitProperties): [string, string][] {
  const out: [string, string][] = [];
  if (p.before !== undefined) out.push(['/before', p.before]);
  if (p.after !== undefined) out.push(['/after', p.after]);
  for (const [key, value] of Object.entries(p.labels ?? {})) out.push([`/labels/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, value]);
  return out;
}

/** A shell word that is exactly `value`: single quotes, each ' written '\''. A shell string cannot hold NUL. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a shell string cannot hold a NUL character');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The machine's first-boot script: see the description in schemas/swarm-flavor.json. The header assigns the values
 * the body uses; the labels go in as one JSON array, so any key or value reaches daemon.json as it is. Fragments are
 * operator-written shell code: they go in verbatim (after substitution) as function bodies the body calls.
 */
export function renderInit(role: Role, p: InitProperties, vars: Record<TemplateVariable, string>, token: string, addrs: readonly string[] = [vars.JOIN_ADDR]): string {
  const bad = addrs.find((a) => a === '' || /\s/.test(a));
  if (addrs.length === 0 || bad !== undefined) throw new Error(`no manager address to join, or one with white space: ${JSON.stringify(addrs)}`);
  return render(role, p, vars, { token, addrs, newSwarm: '' });
}

/**
 * The first-boot script of the seed of a self-managed control plane (swarm/seed.mjs; README "Adopting a first
 * manager"): the same labelling as every manager, then `docker swarm init` with `addrPool` instead of a join.
 */
export function renderSeedInit(p: InitProperties, vars: Record<TemplateVariable, string>, addrPool: string): string {
  if (!/^\S+$/.test(addrPool)) throw new Error(`not an address pool: ${JSON.stringify(addrPool)}`);
  return render('manager', p, vars, { token: '', addrs: [], newSwarm: addrPool });
}

function render(role: Role, p: InitProperties, vars: Record<TemplateVariable, string>, swarm: { token: string; addrs: readonly string[]; newSwarm: string }): string {
  const fill = (text: string): string => text.replace(VARIABLE, (_, name: string) => vars[name as TemplateVariable]);
  const link = `${INSTANCE_LABEL}=${vars.LINK_ID}`;
  const labels = [link, `${GROUP_LABEL}=${vars.GROUP_ID}`, ...Object.entries(p.labels ?? {}).map(([k, v]) => `${k}=${fill(v)}`)];
  const { token, addrs, newSwarm } = swarm;
  const header: [string, string][] = [
    ['CAPSTAN_ROLE', role],
    ['CAPSTAN_GROUP_ID', vars.GROUP_ID],
    ['CAPSTAN_LINK_ID', vars.LINK_ID],
    ['CAPSTAN_LINK_LABEL', link],
    ['CAPSTAN_LABELS', JSON.stringify(labels)],
    ['CAPSTAN_JOIN_ADDRS', addrs.join('\n')],
    ['CAPSTAN_JOIN_ATTEMPTS', String(p.joinAttempts ?? 10)],
    ['CAPSTAN_ADVERTISE_ADDR', p.advertiseAddr ?? ''],
    ['CAPSTAN_PREPULL', (p.prepull ?? []).join('\n')],
    ['CAPSTAN_TOKEN', token],
    ['CAPSTAN_NEW_SWARM', newSwarm],
  ];
  // A fragment may be empty, end in a comment or a here-document, or hold braces: the : and the comment lines
  // around it keep the function well formed whatever valid sh it is.
  const fragment = (name: 'before' | 'after', text: string | undefined): string =>
    text === undefined
      ? `capstan_${name}() { :; }\n`
      : `capstan_${name}() {\n:\n# --- ${name} (flavor properties) ---\n${fill(text)}\n# --- end of ${name} ---\n}\n`;
  return [
    '#!/bin/sh\n',
    `# Capstan swarm-${role} init script: the values and fragments of this machine, then the static body.\n`,
    ...header.map(([name, value]) => `${name}=${shellQuote(value)}\n`),
    '\n',
    fragment('before', p.before),
    '\n',
    fragment('after', p.after),
    '\n',
    BODY,
  ].join('');
}
