// The watcher on the tests' real one-manager Swarm: real services whose tasks Swarm keeps pending.
import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Autoscaler, autoscaleDecisions, type Decision, type GroupView } from '../../src/autoscale/index.js';
import type { Autoscaled } from '../../src/spi/index.js';
import { createDocker } from '../../src/docker.js';
import { engineHost } from '../support/engine.js';
import { group, status, swarmWorker } from './fixtures.js';

const docker = createDocker(engineHost());
const tag = randomUUID().slice(0, 8);

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A replicated service whose tasks (one, unless told) Swarm will keep pending; removed when the test ends. */
async function pendingService(t: Test, name: string, over: { nanoCpus?: number; constraints?: string[]; replicas?: number; maxPerNode?: number }): Promise<string> {
  const s = await docker.createService({
    Name: name,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'] },
      Resources: { Reservations: over.nanoCpus ? { NanoCPUs: over.nanoCpus } : {} },
      Placement: { Constraints: over.constraints ?? [], ...(over.maxPerNode ? { MaxReplicas: over.maxPerNode } : {}) },
    },
    Mode: { Replicated: { Replicas: over.replicas ?? 1 } },
  });
  t.teardown(() => docker.getService(s.id).remove().catch(() => {}));
  return s.id;
}

async function taskOf(service: string): Promise<{ ID: string; CreatedAt: string; Status: { State: string; Err?: string } } | undefined> {
  // Filtered here: the engine answers 404 to a filter naming a service that is gone.
  const tasks = (await docker.listTasks()) as { ID: string; ServiceID: string; CreatedAt: string; Status: { State: string; Err?: string } }[];
  return tasks.find((x) => x.ServiceID === service);
}

/** What the store holds of the group: its size and the autoscaler's last action, stored with the version. */
interface Stored {
  size: number;
  autoscaled?: Autoscaled;
}

/**
 * An autoscaler over one group whose size the scale-up callback raises, as the lead's store commit would. A new
 * leader's autoscaler is another harness over the same `stored`.
 */
function harness(t: Test, id: string, autoscale: Record<string, unknown>, fail = 0, nodeLabels?: Record<string, string>, stored: Stored = { size: 0 }) {
  let failures = fail;
  const calls: { group: string; count: number; reason: string; at: number }[] = [];
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  const groups = (): GroupView[] => {
    const spec = group(id, stored.size, { max: 3, autoscale, ...(nodeLabels ? { nodeLabels } : {}) });
    return [{ spec, status: status(spec, []), flavor: swarmWorker, ...(stored.autoscaled ? { autoscaled: stored.autoscaled } : {}) }];
  };
  const autoscaler = new Autoscaler({
    docker,
    pollMs: 500,
    logger: pino({ level: 'info' }, sink),
    groups,
    scaleUp: async (group, count, reason, mark) => {
      calls.push({ group, count, reason, at: Date.now() });
      if (failures-- > 0) throw new Error('store conflict');
      stored.size += count;
      stored.autoscaled = mark;
    },
    removeInstance: async () => {
      throw new Error('no instance should be removed here');
    },
  });
  t.teardown(() => autoscaler.stop());
  return {
    autoscaler,
    calls,
    lines,
    stored,
    setSize: (n: number) => {
      stored.size = n;
    },
  };
}

const mine = (ds: readonly Decision[], task: string) => ds.filter((d) => d.tasks?.includes(task));

t.test('a task reserving more than any node has: one scale-up of the fitting group, within 2 s', async (t) => {
  const id = `as-up-${tag}`;
  // cooldown 0s: only the count of booting machines keeps the watcher from launching twice.
  const h = harness(t, id, { scaleUpDelay: '1s', cooldown: '0s', cpus: 128, memory: '256GiB' });
  h.autoscaler.start();
  await until('the first read of the Swarm', () => h.autoscaler.preview());
  await sleep(300); // the event stream is open

  const service = await pendingService(t, `as-big-${tag}`, { nanoCpus: 64e9 });
  const call = await until('a scale-up', () => h.calls.find((c) => c.group === id));
  const task = (await taskOf(service))!;
  // Other test files' machines may be in the Swarm too, so the node count in the message varies.
  t.match(task.Status, { State: 'pending', Err: /^no suitable node \(.*insufficient resources/ }, "Swarm's own verdict");
  const latency = call.at - Date.parse(task.CreatedAt);
  t.comment(`task created -> scale-up call: ${latency} ms (scaleUpDelay 1s included)`);
  console.log(`MEASURE autoscale_pending_to_decision_ms ${latency}`);
  t.ok(latency >= 1000, 'not before scaleUpDelay');
  t.ok(latency < 2000, `within the 2 s goal (${latency} ms)`);
  t.equal(call.count, 1);
  t.match(call.reason, new RegExp(`fit 1 new machine\\(s\\) of group ${id}`));

  // Five more reads at least (backstop poll 500 ms): the machine now booting covers the task, nothing is launched twice.
  await sleep(2500);
  t.equal(h.calls.filter((c) => c.group === id).length, 1, 'exactly one scale-up');
  t.match(
    mine(h.autoscaler.lastDecisions(id), task.ID).map((d) => `${d.action}/${d.reason}`),
    ['none/delay', 'scale-up/pending-tasks', 'none/booting'],
    'waited for the delay, scaled once, then saw the booting machine cover the task',
  );
  const logged = h.lines.find((l) => l.event === 'autoscale.decision' && l.action === 'scale-up' && l.group === id);
  t.match(logged, { component: 'autoscale', reason: 'pending-tasks', count: 1, size: 1, tasks: [task.ID], msg: /pending for up to/ });
  t.comment(`log: ${JSON.stringify(logged)}`);
  const counted = (await autoscaleDecisions.get()).values.find((v) => v.labels.group === id && v.labels.action === 'scale-up');
  t.equal(counted?.value, 1, 'capstan_autoscale_decisions_total{action="scale-up"}');

  // The service goes; even with the group back at 0 (the machine lost), nothing is added for it any more.
  await docker.getService(service).remove();
  await until('the task to go', async () => ((await taskOf(service)) ? undefined : true));
  h.setSize(0);
  await sleep(2000);
  t.equal(h.calls.filter((c) => c.group === id).length, 1, 'no further scale-up');
  t.same(mine(h.autoscaler.preview()!.decisions, task.ID), [], 'the task is gone from the decision');
});

t.test('a task with an unsatisfiable constraint scales nothing and says why', async (t) => {
  const id = `as-gpu-${tag}`;
  const h = harness(t, id, { scaleUpDelay: '0s', cooldown: '0s', cpus: 4, memory: '8GiB' });
  h.autoscaler.start();
  await until('the first read of the Swarm', () => h.autoscaler.preview());
  await sleep(300);

  const service = await pendingService(t, `as-gpu-${tag}`, { constraints: ['node.labels.pool==gpu'] });
  const task = await until('the task', () => taskOf(service));
  const started = Date.parse(task.CreatedAt);
  const said = await until('the reason', () => mine(h.autoscaler.lastDecisions(''), task.ID)[0]);
  t.comment(`task created -> decision not to act: ${Date.now() - started} ms or less`);
  t.match(said, { action: 'none', reason: 'no-fitting-group' });
  t.match(said.message, /"no suitable node \(.*scheduling constraints not satisfied/, "Swarm's word is in it");
  t.match(said.message, new RegExp(`group ${id}: constraint "node\\.labels\\.pool==gpu" is not met`));
  t.match((await taskOf(service))!.Status, { State: 'pending', Err: /scheduling constraints not satisfied/ });
  await sleep(1500);
  t.same(h.calls, [], 'no scale-up');
  t.equal(mine(h.autoscaler.lastDecisions(''), task.ID).length, 1, 'the same reason is logged once, not on every read');
  const logged = h.lines.find((l) => l.reason === 'no-fitting-group' && (l.tasks as string[]).includes(task.ID));
  t.match(logged, { event: 'autoscale.decision', action: 'none', group: '' });
  t.comment(`log: ${JSON.stringify(logged)}`);
});

t.test('a failed scale-up is retried after the backstop interval, not held back by its own cooldown', async (t) => {
  const id = `as-retry-${tag}`;
  const h = harness(t, id, { scaleUpDelay: '0s', cooldown: '1m', cpus: 128, memory: '256GiB' }, 1);
  h.autoscaler.start();
  await until('the first read of the Swarm', () => h.autoscaler.preview());
  await pendingService(t, `as-retry-${tag}`, { nanoCpus: 64e9 });
  await until('a retry', () => h.calls.filter((c) => c.group === id)[1]);
  const [first, second] = h.calls.filter((c) => c.group === id);
  t.ok(second!.at - first!.at >= 500, `retried ${second!.at - first!.at} ms later (pollMs 500)`);
  t.match(h.lines.find((l) => l.event === 'autoscale.failed' && l.group === id), { action: 'scale-up', err: /store conflict/ });
  await sleep(1500);
  t.equal(h.calls.filter((c) => c.group === id).length, 2, 'the retry succeeded: nothing more');
});

t.test("a new leader's autoscaler waits out the cooldown its predecessor's scale-up began", async (t) => {
  const id = `as-cool-${tag}`;
  const policy = { scaleUpDelay: '0s', cooldown: '1m', cpus: 128, memory: '256GiB' };
  const first = harness(t, id, policy);
  first.autoscaler.start();
  await until('the first read of the Swarm', () => first.autoscaler.preview());
  await sleep(300);
  const service = await pendingService(t, `as-cool-${tag}`, { nanoCpus: 64e9 });
  const call = await until('the first scale-up', () => first.calls.find((c) => c.group === id));
  t.equal(call.count, 1);
  t.match(first.stored.autoscaled, { action: 'scale-up' }, 'the action is stored with the version it made');
  await first.autoscaler.stop();

  // Its machine is lost (the size back at 0) and leadership moves: the task still waits, the cooldown has not ended.
  first.setSize(0);
  const next = harness(t, id, policy, 0, undefined, first.stored);
  next.autoscaler.start();
  const task = (await taskOf(service))!;
  const held = await until('a decision about the task', () => mine(next.autoscaler.lastDecisions(id), task.ID)[0]);
  await sleep(1500); // three backstop reads at least
  t.same(next.calls, [], 'no scale-up within the predecessor\'s cooldown');
  t.match(held, { action: 'none', reason: 'cooldown' }, 'held for the cooldown, and says so');
  t.match(held.message, /cooldown 1m/);
});

/** Sets (or with undefined, removes) a label of the engine's one manager node; retried on a version conflict. */
async function labelManager(key: string, value: string | undefined): Promise<void> {
  const id = (await docker.info()).Swarm.NodeID as string;
  for (let attempt = 0; ; attempt++) {
    const node = (await docker.getNode(id).inspect()) as { Version: { Index: number }; Spec: { Labels?: Record<string, string> } };
    const labels = { ...node.Spec.Labels };
    if (value === undefined) delete labels[key];
    else labels[key] = value;
    try {
      await docker.getNode(id).update({ version: node.Version.Index, ...node.Spec, Labels: labels });
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

t.test('max replicas per node: a replica refused for it gets a machine, though the manager has the room', async (t) => {
  const id = `as-spread-${tag}`;
  // The label keeps the service (and the group's machines) to the manager and this test's machines only.
  const label = `capstan-as-${tag}`;
  await labelManager(label, 'yes');
  t.teardown(() => labelManager(label, undefined));
  const h = harness(t, id, { scaleUpDelay: '0s', cooldown: '0s', cpus: 1, memory: '1GiB' }, 0, { [label]: 'yes' });
  h.autoscaler.start();
  await until('the first read of the Swarm', () => h.autoscaler.preview());
  const service = await pendingService(t, `as-spread-${tag}`, { constraints: [`node.labels.${label}==yes`], replicas: 2, maxPerNode: 1 });
  const call = await until('a scale-up', () => h.calls.find((c) => c.group === id));
  const tasks = ((await docker.listTasks()) as { ServiceID: string; NodeID?: string; Status: { State: string; Err?: string } }[]).filter((x) => x.ServiceID === service);
  t.equal(tasks.filter((x) => x.NodeID).length, 1, 'one replica is placed on the manager');
  t.match(tasks.find((x) => x.Status.State === 'pending')?.Status.Err, /max replicas per node/, 'the other waits');
  t.equal(call.count, 1);
  t.match(call.reason, /fit 1 new machine/);
});
