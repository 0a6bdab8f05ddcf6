import type { Logger } from '../log.js';
import type { Flavor, GroupSpec, InstanceProvider, Plugins, SpecVersion } from '../spi/index.js';
import { configHash } from './identity.js';
import { pluginProperties } from './spec.js';

/** A provider and flavor for machines in one location. */
export interface Owner {
  readonly provider: InstanceProvider;
  readonly flavor: Flavor;
  readonly location: string;
}

/** What a pass works with, swapped as one so a commit never lands halfway through a pass. */
export interface Config extends Owner {
  readonly version: SpecVersion;
  readonly hash: string;
  /** Where machines of earlier versions live, when elsewhere: found and replaced through their own provider. */
  readonly former: readonly Owner[];
}

/** Where machines made from this section live: the provider's name and its own word for the place. */
export function locationOf(plugins: Plugins, instance: GroupSpec['instance']): string {
  const kind = plugins.providers.get(instance.provider);
  return `${instance.provider}:${kind?.location?.(pluginProperties(kind, instance.properties)) ?? ''}`;
}

/** A provider and flavor for these sections; undefined (logged) when a kind is no longer known. */
function owner(plugins: Plugins, log: Logger, instance: GroupSpec['instance'], flavor: GroupSpec['flavor']): Owner | undefined {
  const providerKind = plugins.providers.get(instance.provider);
  const flavorKind = plugins.flavors.get(flavor.kind);
  if (!providerKind || !flavorKind) {
    log.error({ event: 'group.unknownKind', provider: instance.provider, flavor: flavor.kind }, 'machines of a version cannot be reached: unknown kind');
    return undefined;
  }
  return {
    provider: providerKind.create(pluginProperties(providerKind, instance.properties)),
    flavor: flavorKind.create(pluginProperties(flavorKind, flavor.properties)),
    location: locationOf(plugins, instance),
  };
}

/**
 * The config of a version: the same provider and flavor objects while the machines stay the same (they cache
 * clients), new ones otherwise, plus an owner for each other location earlier versions' machines live in.
 */
export function configOf(plugins: Plugins, log: Logger, version: SpecVersion, previous: Config | undefined): Config {
  const hash = configHash(version.spec);
  const current = previous?.hash === hash ? previous : owner(plugins, log, version.spec.instance, version.spec.flavor)!;
  const former: Owner[] = [];
  for (const f of version.state?.former ?? []) {
    if ([current, ...former].some((o) => o.location === locationOf(plugins, f.instance))) continue;
    const o = owner(plugins, log, f.instance, f.flavor);
    if (o) former.push(o);
  }
  return { provider: current.provider, flavor: current.flavor, location: current.location, version, hash, former };
}
