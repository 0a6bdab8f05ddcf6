// The feed the console's event stream follows (src/feed.ts): the group service publishes every version it stores
// and every group it lets go, each loop its progress as the group moves (once per change), and a listener that
// throws harms neither the producer nor the other listeners. Simulated machines: no Docker.
import t from 'tap';
import { feed, Feed, type FeedEvent } from '../../src/feed.js';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { MemoryStore } from '../support/memory-store.js';

t.test('a throwing listener is skipped; unsubscribing stops delivery', async (t) => {
  const f = new Feed();
  const seen: string[] = [];
  const off = f.subscribe((e) => seen.push(e.type));
  f.subscribe(() => {
    throw new Error('broken listener');
  });
  t.equal(f.listeners, 2);
  f.publish({ type: 'group.removed', group: 'a', at: '' });
  off();
  f.publish({ type: 'group.removed', group: 'b', at: '' });
  t.same(seen, ['group.removed']);
  t.equal(f.listeners, 1);
});

t.test('the group service and the loop publish what happens to a group', async (t) => {
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  t.teardown(() => controller.stop());
  const service = new GroupService({ store: new MemoryStore(), controller, validate, logger: silentLogger });
  const events: FeedEvent[] = [];
  t.teardown(feed.subscribe((e) => events.push(e)));

  const spec = validate({ id: 'web', allocation: { size: 2 }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } });
  await service.commit(spec);
  await controller.reconcile('web');
  await controller.reconcile('web');
  await controller.reconcile('web');
  await service.scale('web', 3);
  await service.pause('web');
  await service.free('web');

  const said = events.map((e) => (e.type === 'group.version' ? `v${e.version} ${e.note}` : e.type === 'group.progress' ? `${e.healthy}/${e.size}${e.converged ? ' converged' : ''}` : e.type));
  t.same(said.slice(0, 3), ['v1 commit', '0/2', '2/2 converged'], 'a version, then progress once per change (the third pass saw nothing new)');
  t.same(said.filter((s) => s.startsWith('v') || s === 'group.removed'), ['v1 commit', 'v2 scale: size 2 -> 3', 'v3 pause', 'group.removed']);
  t.ok(events.every((e) => e.group === 'web' && !Number.isNaN(Date.parse(e.at))), 'each names its group and says when');
});
