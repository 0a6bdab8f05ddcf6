/** Spreading new instances over subnets (one per availability zone, typically). */

/**
 * How many of `count` new instances go to each subnet so that, with what already runs there,
 * the subnets end as even as possible; ties go to the subnet listed first.
 */
export function spread(count: number, subnets: readonly string[], existing: ReadonlyMap<string, number>): Map<string, number> {
  const load = subnets.map((subnet) => existing.get(subnet) ?? 0);
  const added = subnets.map(() => 0);
  for (let n = 0; n < count; n++) {
    let best = 0;
    for (let i = 1; i < subnets.length; i++) if (load[i]! < load[best]!) best = i;
    load[best]!++;
    added[best]!++;
  }
  const out = new Map<string, number>();
  subnets.forEach((subnet, i) => {
    if (added[i]! > 0) out.set(subnet, added[i]!);
  });
  return out;
}

/** Subnets to fall back on when `tried` ones lack capacity: least loaded first. */
export function fallbacks(subnets: readonly string[], load: ReadonlyMap<string, number>, tried: ReadonlySet<string>): string[] {
  return subnets
    .filter((subnet) => !tried.has(subnet))
    .map((subnet, index) => ({ subnet, index, load: load.get(subnet) ?? 0 }))
    .sort((a, b) => a.load - b.load || a.index - b.index)
    .map((x) => x.subnet);
}

/** Whether IPv4 `address` lies in `cidr` ("10.0.1.0/24"). */
export function inCidr(address: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const prefix = Number(bits);
  const a = ipv4ToInt(address);
  const b = base === undefined ? undefined : ipv4ToInt(base);
  if (a === undefined || b === undefined || !(prefix >= 0 && prefix <= 32)) return false;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

function ipv4ToInt(address: string): number | undefined {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}
