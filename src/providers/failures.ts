/** Marks what a provider throws as a provider failure (errors.ts), so callers get providerFailure with its code. */
import { markProviderFailure } from '../errors.js';
import type { InstanceProvider } from '../spi/instance.js';

async function marked<T>(provider: string, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw markProviderFailure(error, provider, operation);
  }
}

/** The same provider, every error it throws marked as the named provider's failure (and otherwise unchanged). */
export function reportingFailures(name: string, provider: InstanceProvider): InstanceProvider {
  const tag = provider.tag?.bind(provider);
  const stop = provider.stop?.bind(provider);
  const start = provider.start?.bind(provider);
  return {
    get maxBatch() {
      return provider.maxBatch;
    },
    provision: (specs, intent) => marked(name, 'provision', () => provider.provision(specs, intent)),
    destroy: (ids) => marked(name, 'destroy', () => provider.destroy(ids)),
    describe: (tags) => marked(name, 'describe', () => provider.describe(tags)),
    ...(tag ? { tag: (ids: readonly string[], tags: Record<string, string>) => marked(name, 'tag', () => tag(ids, tags)) } : {}),
    ...(stop ? { stop: (ids: readonly string[]) => marked(name, 'stop', () => stop(ids)) } : {}),
    ...(start ? { start: (ids: readonly string[]) => marked(name, 'start', () => start(ids)) } : {}),
  };
}
