// A task a new machine of the group turns out not to satisfy gets one machine, then a "why not" (decide, pure).
import t from 'tap';
import { decide, type AutoscaleState, type Decision, type Tried } from '../../src/autoscale/decide.js';
import { group, node, status, task } from './fixtures.js';

const ups = (ds: readonly Decision[]) => ds.filter((d) => d.action === 'scale-up');
const why = (ds: readonly Decision[], reason: Decision['reason']) => ds.find((d) => d.action === 'none' && d.reason === reason);

// The policy declares riscv64 machines; the machines the group really gets are x86_64.
const arm = (size: number) => group('arm', size, { min: 0, autoscale: { platform: { architecture: 'riscv64' }, cooldown: '0s' } });
const spec = arm(1);
const riscv = task('r', { constraints: ['node.platform.arch==riscv64'], since: 0 });
/** At 60 s: the group's one machine, added for task r at 50 s, ready since `readySince` (an empty x86_64 worker). */
function world(readySince: number | undefined, tried: Tried | undefined, over: Partial<AutoscaleState> = {}): AutoscaleState {
  const nodes = readySince === undefined ? [] : [node('new', 'arm', { hostname: 'capstan-arm-1', reservedNanoCpus: 0, reservedMemoryBytes: 0, readySince, idleSince: readySince })];
  return {
    now: 60_000,
    groups: [{ spec, status: status(spec, nodes.map((n) => n.id)) }],
    nodes,
    pending: [riscv],
    ...(tried ? { tried: { r: { arm: tried } } } : {}),
    ...over,
  };
}

t.test('the first machine is added: the policy says it fits', async (t) => {
  const out = decide({ ...world(undefined, undefined), groups: [{ spec: arm(0) }] });
  t.match(ups(out.decisions), [{ group: 'arm', count: 1, tasks: ['r'] }]);
});

t.test('while it boots, and while the scheduler has its chance with it, nothing more', async (t) => {
  t.same(ups(decide(world(undefined, { at: 50_000 })).decisions), [], 'booting: counted as the machine for it');
  const joined = decide(world(58_000, { at: 50_000 }));
  t.same(ups(joined.decisions), [], 'joined 2 s ago');
  t.match(why(joined.decisions, 'booting'), { group: 'arm', tasks: ['r'] });
  t.equal(joined.nextAt, 63_000, 'looked at again when the grace ends');
  t.notOk(joined.unsatisfiable);
});

t.test('joined without what the task needs: no further machine, and why', async (t) => {
  const out = decide(world(52_000, { at: 50_000 }));
  t.same(ups(out.decisions), []);
  const said = why(out.decisions, 'unsatisfiable');
  t.match(said, { group: 'arm', tasks: ['r'] });
  t.match(said?.message, /node capstan-arm-1 of group arm, added for it 10s ago, joined without what it needs: constraint "node\.platform\.arch==riscv64" is not met \(node\.platform\.arch is "x86_64"\)/);
  t.match(out.unsatisfiable, [{ task: 'r', group: 'arm', why: /x86_64/ }], 'the verdict, for the watcher to keep');
  t.notOk(why(out.decisions, 'no-fitting-group'));

  // The verdict stands once the machine is gone (the idle worker removed): no machine again for the same task.
  const gone = decide(world(undefined, { at: 50_000, verdict: out.unsatisfiable![0]!.why }, { groups: [{ spec: arm(0), status: status(arm(0), []) }] }));
  t.same(ups(gone.decisions), []);
  t.match(why(gone.decisions, 'unsatisfiable'), { tasks: ['r'] });
  t.match(why(gone.decisions, 'unsatisfiable')?.message, /x86_64/);
  t.same(ups(decide(world(undefined, undefined, { groups: [{ spec: arm(0) }] })).decisions).length, 1, 'a new task (a new id) gets its one machine');
});

t.test('the idle machine added for it is not held by the task it cannot run', async (t) => {
  const out = decide({ ...world(52_000, { at: 50_000 }), now: 52_000 + 10 * 60_000 + 1 });
  t.match(out.decisions.filter((d) => d.action === 'scale-down'), [{ group: 'arm', nodeId: 'new', reason: 'idle' }]);
});

t.test('a machine that joined and would fit when empty, but others took it: the task may get another', async (t) => {
  const fitting = group('web', 1, { min: 0, autoscale: { cooldown: '0s' } });
  const full = node('new', 'web', { readySince: 52_000 });
  const out = decide({ now: 60_000, groups: [{ spec: fitting, status: status(fitting, ['new']) }], nodes: [full], pending: [task('w')], tried: { w: { web: { at: 50_000 } } } });
  t.match(ups(out.decisions), [{ group: 'web', count: 1, tasks: ['w'] }]);
  t.notOk(why(out.decisions, 'unsatisfiable'));
});
