import t from 'tap';
import { registry } from '../../src/metrics.js';
import { GroupMetrics } from '../../src/group/group-metrics.js';
import type { GroupStatus } from '../../src/spi/index.js';

const status = (id: string, healths: string[]): GroupStatus => ({
  id,
  version: 1,
  size: healths.length,
  configHash: 'c',
  converged: true,
  instances: healths.map((health, n) => ({ id: `${id}-${n}`, state: 'running', config: 'c', health })),
  update: { state: 'idle', total: healths.length, done: healths.length, failed: 0 },
});
const series = async (group: string) => (await registry.metrics()).split('\n').filter((l) => l.includes(`group="${group}"`));

t.test('one group\'s pass replaces its own series only; a removed group\'s series are dropped', async (t) => {
  const a = new GroupMetrics('ma');
  const b = new GroupMetrics('mb');
  a.set(status('ma', ['healthy', 'unhealthy']), { broken: 1, limit: 1 });
  b.set(status('mb', ['healthy']), { broken: 0, limit: 1 });
  const bBefore = await series('mb');
  t.ok(bBefore.some((l) => l.startsWith('capstan_group_instances{') && l.includes('health="healthy"')));
  // a's unhealthy member recovers: its old pair goes, b is untouched.
  a.set(status('ma', ['healthy', 'healthy']), { broken: 0, limit: 1 });
  t.notOk((await series('ma')).some((l) => l.includes('health="unhealthy"')), 'a pair that disappeared is removed');
  t.same(await series('mb'), bBefore, 'the other group\'s series are as they were');
  a.set(status('ma', ['unhealthy', 'unhealthy', 'unhealthy']), { broken: 3, limit: 1, blocked: 'too many' });
  t.ok((await series('ma')).includes('capstan_repair_blocked{group="ma"} 1'), 'the breaker is a metric');
  a.remove();
  t.same(await series('ma'), [], 'a removed group leaves no series');
  t.same(await series('mb'), bBefore);
});
