import t from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import type Docker from 'dockerode';
import { decide, hostOf, Leadership, type SwarmInfo, type SwarmNode } from '../../src/swarm/leader.js';
import { createDocker } from '../../src/docker.js';
import { silentLogger } from '../../src/log.js';
import { leadership as leadershipGauge } from '../../src/metrics.js';
import { engineHost } from '../support/engine.js';

const info = (nodeId: string, extra: Partial<NonNullable<SwarmInfo['Swarm']>> = {}): SwarmInfo => ({
  Swarm: { NodeID: nodeId, LocalNodeState: 'active', ControlAvailable: true, ...extra },
});
const manager = (id: string, leader: boolean, addr = `10.0.0.${id.length}:2377`): SwarmNode => ({
  ID: id,
  ManagerStatus: { Leader: leader, Addr: addr, Reachability: 'reachable' },
});
const worker = (id: string): SwarmNode => ({ ID: id });

t.test('decide: pure verdicts from /info and /nodes', async (t) => {
  t.same(decide(info('a'), [manager('a', true, '10.0.0.1:2377'), manager('bb', false), worker('w')]), {
    nodeId: 'a',
    leading: true,
    leaderNodeId: 'a',
    leaderAddr: '10.0.0.1',
  });
  t.same(decide(info('a'), [manager('a', false), manager('bb', true, '10.0.0.2:2377')]), {
    nodeId: 'a',
    leading: false,
    leaderNodeId: 'bb',
    leaderAddr: '10.0.0.2',
  });

  const noLeader = decide(info('a'), [manager('a', false), manager('bb', false)]);
  t.equal(noLeader.leading, false);
  t.equal(noLeader.leaderNodeId, undefined);
  t.match(noLeader.error, /no leader/);

  const twoLeaders = decide(info('a'), [manager('a', true), manager('bb', true)]);
  t.equal(twoLeaders.leading, false, 'two leaders is doubt, not leadership');
  t.match(twoLeaders.error, /2 leaders/);

  const inactive = decide({ Swarm: { NodeID: '', LocalNodeState: 'inactive', ControlAvailable: false } }, []);
  t.equal(inactive.leading, false);
  t.match(inactive.error, /not active/);

  const pending = decide(info('a', { LocalNodeState: 'pending' }), [manager('a', true)]);
  t.equal(pending.leading, false, 'a stale /nodes never overrides an inactive local state');

  const notManager = decide(info('w', { ControlAvailable: false }), [manager('a', true), worker('w')]);
  t.equal(notManager.leading, false);
  t.match(notManager.error, /not a manager/);

  t.equal(decide({}, []).leading, false, 'an /info without Swarm is doubt');
  const unknownSelf = decide(info('a'), [manager('bb', true)]);
  t.equal(unknownSelf.leading, false);
  t.equal(unknownSelf.leaderNodeId, 'bb');
});

t.test('hostOf: host part of a manager address', async (t) => {
  t.equal(hostOf('172.17.0.1:2377'), '172.17.0.1');
  t.equal(hostOf('[fd00::1]:2377'), 'fd00::1');
  t.equal(hostOf('manager-1:2377'), 'manager-1');
  t.equal(hostOf('10.0.0.1'), '10.0.0.1');
});

async function gauge(): Promise<number | undefined> {
  return (await leadershipGauge.get()).values[0]?.value;
}

t.test('leads on the one-manager test Swarm, says who and since when, steps down on stop', async (t) => {
  const docker = createDocker(engineHost());
  const self = await docker.info();
  const nodes = await docker.listNodes();
  const me = nodes.find((n) => n.ID === self.Swarm.NodeID);

  const leader = new Leadership({ docker, logger: silentLogger, pollMs: 500 });
  const changes: boolean[] = [];
  leader.onChange((leading) => changes.push(leading));
  t.teardown(() => leader.stop());
  const before = Date.now();
  await leader.start();

  const status = leader.status();
  t.equal(status.leading, true);
  t.equal(status.nodeId, self.Swarm.NodeID);
  t.equal(status.leaderNodeId, self.Swarm.NodeID);
  t.equal(status.leaderAddr, String(me.ManagerStatus.Addr).split(':')[0]);
  t.equal(leader.leaderAddr(), status.leaderAddr);
  t.equal(status.error, undefined);
  t.ok(status.since && Date.parse(status.since) >= before - 1000, 'since is an ISO time');
  t.same(changes, [true]);
  t.equal(await gauge(), 1);

  await new Promise((resolve) => setTimeout(resolve, 1200));
  t.same(changes, [true], 'polls that agree emit nothing');
  t.equal(leader.status().since, status.since, 'since stays while the leader is unchanged');

  leader.stop();
  t.same(changes, [true, false], 'stop gives leadership up');
  t.equal(leader.status().leading, false);
  t.equal(await gauge(), 0);
});

t.test('during an election it looks again every 250 ms, not every poll, and leads as soon as its node is named', async (t) => {
  // A daemon that answers like a surviving manager: no leader while Raft elects, then this node. No node event
  // announces the change, so only the checks can see it.
  let electedAt = Infinity;
  let checks = 0;
  const docker = {
    info: async () => info('self'),
    listNodes: async () => (checks++, [manager('self', Date.now() >= electedAt), manager('other', false)]),
    getEvents: () => new Promise(() => {}),
  } as unknown as Docker;
  const leader = new Leadership({ docker, logger: silentLogger, pollMs: 2000, timeoutMs: 1000 });
  t.teardown(() => leader.stop());
  await leader.start();
  t.match(leader.status(), { leading: false, error: 'no leader among the managers' }, 'in doubt while Raft elects');
  const before = checks;
  await new Promise((r) => setTimeout(r, 1500));
  t.ok(checks - before >= 3, `${checks - before} checks in 1.5 s of doubt (the poll alone: none)`);
  const up = nextChange(leader, true, 5000);
  electedAt = Date.now();
  const ms = (await up) - electedAt;
  t.ok(ms < 1000, `leading ${ms} ms after its node was named (the poll alone: up to 2000 ms)`);
  // Once a leader is known, the usual poll again.
  const settled = checks;
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(checks - settled <= 1, `${checks - settled} check(s) in the next second`);
});

t.test('a daemon that cannot be reached: never leads, reports the error', async (t) => {
  const docker = createDocker('unix:///tmp/capstan-no-such-daemon.sock', 500);
  const leader = new Leadership({ docker, logger: silentLogger, pollMs: 200 });
  const changes: boolean[] = [];
  leader.onChange((leading) => changes.push(leading));
  t.teardown(() => leader.stop());
  await leader.start();
  t.equal(leader.status().leading, false);
  t.match(leader.status().error, /ENOENT|connect/);
  t.equal(leader.leaderAddr(), undefined);
  t.same(changes, []);
});

/** A Swarm manager of this test's own: a dockerd in its own network namespace (no clash with the shared engine). */
interface OwnManager {
  readonly host: string;
  readonly pid: number;
  readonly docker: Docker;
  stop(): Promise<void>;
}

async function startOwnManager(timeoutMs: number): Promise<OwnManager> {
  const dir = mkdtempSync('/tmp/capl-');
  const sock = `${dir}/docker.sock`;
  const child = spawn(
    'unshare',
    [
      '--net',
      'sh',
      '-c',
      'ip link set lo up && exec dockerd --data-root "$0/data" --exec-root "$0/exec" -H "unix://$0/docker.sock" ' +
        '--pidfile "$0/docker.pid" --bridge=none --iptables=false --ip-masq=false',
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  const pid = child.pid!;
  child.unref();
  const stop = () => stopOwnManager(pid, dir);
  const docker = createDocker(`unix://${sock}`, timeoutMs);
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await docker.ping();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`own dockerd did not answer on ${sock}: ${String(err)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await docker.swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: `unix://${sock}`, pid, docker, stop };
}

async function stopOwnManager(pid: number, dir: string): Promise<void> {
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  const waitGone = async (p: number, ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    while (alive(p) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100));
    return !alive(p);
  };
  if (alive(pid)) {
    process.kill(pid, 'SIGCONT');
    process.kill(pid, 'SIGTERM');
    if (!(await waitGone(pid, 20_000))) process.kill(pid, 'SIGKILL');
  }
  // dockerd stops its own containerd on SIGTERM; after a SIGKILL it would be orphaned: find it by our unique dir.
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.includes(dir)) {
      process.kill(Number(entry), 'SIGKILL');
      await waitGone(Number(entry), 5_000);
    }
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint?.startsWith(`${dir}/`)) execFileSync('umount', ['-l', mountPoint]);
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Resolves with the time (epoch ms) at which `leader` next changes to `want`. */
function nextChange(leader: Leadership, want: boolean, withinMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no change to ${want} within ${withinMs} ms`));
    }, withinMs);
    const off = leader.onChange((leading) => {
      if (leading !== want) return;
      clearTimeout(timer);
      off();
      resolve(Date.now());
    });
  });
}

t.test('a hung daemon (SIGSTOP): steps down within poll + timeout, leads again once it answers', async (t) => {
  const pollMs = 2000; // the default
  const timeoutMs = 1000;
  const own = await startOwnManager(timeoutMs);
  t.teardown(() => own.stop());
  const leader = new Leadership({ docker: own.docker, logger: silentLogger, pollMs, timeoutMs });
  t.teardown(() => leader.stop());
  await leader.start();
  t.equal(leader.status().leading, true, 'leads its own one-manager Swarm');
  t.equal(leader.status().leaderAddr, '127.0.0.1');

  const down = nextChange(leader, false, 3 * (pollMs + timeoutMs));
  const stopped = Date.now();
  process.kill(own.pid, 'SIGSTOP');
  const stepDownMs = (await down) - stopped;
  t.comment(`step-down after SIGSTOP: ${stepDownMs} ms (bound poll ${pollMs} + timeout ${timeoutMs} ms)`);
  // Slack for timers running late while other test files load the machine.
  t.ok(stepDownMs <= pollMs + timeoutMs + 750, `stepped down in ${stepDownMs} ms`);
  t.equal(leader.status().leading, false);
  t.ok(leader.status().error, 'the status says why');
  t.equal(leader.leaderAddr(), undefined, 'no leader address while in doubt');

  const up = nextChange(leader, true, 10_000);
  const continued = Date.now();
  process.kill(own.pid, 'SIGCONT');
  const regainMs = (await up) - continued;
  t.comment(`leading again ${regainMs} ms after SIGCONT`);
  t.equal(leader.status().error, undefined);
});

t.test('a node event triggers a check at once; leaving the Swarm (no event) is caught by the poll', async (t) => {
  const own = await startOwnManager(2000);
  t.teardown(() => own.stop());
  let pollMs = 60_000;
  const leader = new Leadership({ docker: own.docker, logger: silentLogger, pollMs, timeoutMs: 2000 });
  t.teardown(() => leader.stop());
  await leader.start();
  t.equal(leader.status().leading, true);
  const checkedAt = leader.status().checkedAt;
  t.ok(checkedAt, 'status says when it last checked');

  await new Promise((resolve) => setTimeout(resolve, 300)); // let the events stream connect
  const node = own.docker.getNode(leader.status().nodeId!);
  const current = (await node.inspect()) as { Version: { Index: number }; Spec: object };
  const start = Date.now();
  await node.update({ version: current.Version.Index, ...current.Spec, Labels: { capstan: 'test' } });
  while (leader.status().checkedAt === checkedAt && Date.now() - start < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
  t.not(leader.status().checkedAt, checkedAt, 'checked again without waiting for the 60 s poll');
  t.comment(`checked ${Date.now() - start} ms after a node update`);
  leader.stop();

  pollMs = 1000;
  const poller = new Leadership({ docker: own.docker, logger: silentLogger, pollMs, timeoutMs: 2000 });
  t.teardown(() => poller.stop());
  await poller.start();
  t.equal(poller.status().leading, true);
  const down = nextChange(poller, false, 10_000);
  const leaveStart = Date.now();
  await createDocker(own.host, 30_000).swarmLeave({ force: true });
  const leaveEnd = Date.now();
  const downAt = await down;
  t.comment(`stepped down ${downAt - leaveStart} ms after the leave began (it returned after ${leaveEnd - leaveStart} ms)`);
  t.ok(downAt <= leaveEnd + pollMs + 750, 'by the next poll after the leave');
  t.match(poller.status().error, /not a swarm manager|not active/i);
});
