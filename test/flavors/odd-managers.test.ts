// A swarm-manager group is admitted only if the whole Swarm then has an odd number of managers (issue 13 item 6).
import t from 'tap';
import { oddManagers, type SwarmNode } from '../../src/flavors/swarm.js';

const node = (id: string, role: 'manager' | 'worker', group?: string, state = 'ready'): SwarmNode =>
  ({
    ID: id,
    Spec: { Role: role, Availability: 'active' },
    Status: { State: state },
    ...(role === 'manager' ? { ManagerStatus: { Reachability: state === 'down' ? 'unreachable' : 'reachable' } } : {}),
    Description: { Engine: { Labels: group ? { 'capstan.group': group } : {} } },
  }) as unknown as SwarmNode;

const handMade = [node('a', 'manager'), node('b', 'manager'), node('c', 'manager'), node('w', 'worker', 'workers')];

t.test('the Swarm-wide count decides, not the group alone', async (t) => {
  t.match(oddManagers(handMade, { size: 1 }, 'managers'), [/^\/allocation\/size: the Swarm would have 4 managers \(3 not of group managers and 1 of it\).*use 0 or 2/]);
  t.same(oddManagers(handMade, { size: 2 }, 'managers'), [], '3 + 2 = 5');
  t.same(oddManagers(handMade, { size: 0 }, 'managers'), [], 'a group of none changes nothing');
  t.match(oddManagers(handMade, { logicalIds: ['m1', 'm2', 'm3'] }, 'managers'), [/^\/allocation\/logicalIds: .* 6 managers/]);
});

t.test("the group's own managers are replaced by its size; workers and other groups' managers are not", async (t) => {
  const self = [node('s1', 'manager', 'managers'), node('s2', 'manager', 'managers'), node('s3', 'manager', 'managers'), node('w', 'worker')];
  t.same(oddManagers(self, { size: 3 }, 'managers'), [], 'a self-managed Swarm of 3');
  t.same(oddManagers(self, { size: 5 }, 'managers'), [], '3 -> 5');
  t.match(oddManagers(self, { size: 4 }, 'managers'), [/4 managers \(0 not of group managers and 4 of it\)/]);
  t.match(oddManagers([...self, node('x', 'manager', 'other')], { size: 3 }, 'managers'), [/4 managers \(1 not of group managers/]);
});

t.test('a Down manager still counts: Raft keeps it a member until it is removed', async (t) => {
  t.match(oddManagers([node('a', 'manager'), node('b', 'manager', undefined, 'down')], { size: 2 }, 'managers'), [/4 managers/]);
});

t.test('a manager node that is no Raft member (given up by a recovery) does not count', async (t) => {
  const given = { ...node('g', 'manager', undefined, 'down'), ManagerStatus: undefined } as unknown as SwarmNode;
  t.same(oddManagers([node('s', 'manager', 'managers'), given], { size: 3 }, 'managers'), []);
});
