import { CapstanError } from '../../src/errors.js';
import type { GroupSpec, SpecStore, SpecVersion, VersionState } from '../../src/spi/index.js';

/** An in-memory SpecStore with the real store's contract: versions grow by one, stale commits conflict. */
export class MemoryStore implements SpecStore {
  private readonly versions = new Map<string, SpecVersion[]>();
  /** Every commit and remove, in order, so tests can assert that nothing changed. */
  readonly writes: string[] = [];

  async list(): Promise<SpecVersion[]> {
    return [...this.versions.values()].map((vs) => vs[vs.length - 1]!);
  }

  async get(id: string): Promise<SpecVersion | undefined> {
    const vs = this.versions.get(id);
    return vs?.[vs.length - 1];
  }

  async history(id: string): Promise<SpecVersion[]> {
    return [...(this.versions.get(id) ?? [])];
  }

  async commit(spec: GroupSpec, expected: number, state?: VersionState): Promise<SpecVersion> {
    const vs = this.versions.get(spec.id) ?? [];
    const current = vs[vs.length - 1]?.version ?? 0;
    if (current !== expected) throw new CapstanError('conflict', `group ${spec.id} is at version ${current}, not ${expected}`);
    const version: SpecVersion = { id: spec.id, version: current + 1, createdAt: new Date().toISOString(), spec: structuredClone(spec), ...(state ? { state: structuredClone(state) } : {}) };
    this.versions.set(spec.id, [...vs, version]);
    this.writes.push(`commit ${spec.id} v${version.version}`);
    return version;
  }

  async remove(id: string): Promise<void> {
    this.versions.delete(id);
    this.writes.push(`remove ${id}`);
  }

  /** A snapshot of every group's versions, for "nothing changed" assertions. */
  snapshot(): string {
    return JSON.stringify([...this.versions.entries()]);
  }
}
