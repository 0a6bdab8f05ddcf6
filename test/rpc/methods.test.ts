import t from 'tap';
import { ErrorCode } from '../../src/errors.js';
import { methodNames } from '../../src/rpc/catalog.js';
import { convergedStatus } from '../support/recording-controller.js';
import { spec, startServer, token } from './harness.js';

t.test('group.commit stores a version, applies it and returns the plan; pretend stores nothing', async (t) => {
  const h = await startServer(t);
  h.controller.plan = { create: 3, createLogicalIds: [], destroy: [], replace: [] };

  const pretend = await h.call('group.commit', { spec: spec(), pretend: true });
  t.same(pretend.result, { id: 'workers', version: 0, stored: false, plan: h.controller.plan });
  t.same(h.store.writes, [], 'pretend stores nothing');
  t.notOk(h.controller.calls.some((c) => c.op === 'apply'), 'pretend applies nothing');

  const first = await h.call('group.commit', { spec: spec() });
  t.same(first.result, { id: 'workers', version: 1, stored: true, plan: h.controller.plan });
  const second = await h.call('group.commit', { spec: spec('workers', 5) });
  t.equal(second.result.version, 2);
  t.same(
    h.controller.calls.filter((c) => c.op === 'apply'),
    [
      { op: 'apply', id: 'workers', arg: 1 },
      { op: 'apply', id: 'workers', arg: 2 },
    ],
  );
  const stored = await h.store.get('workers');
  t.equal(stored?.spec.update.maxSurge, 1, 'the stored spec carries the defaults validation applied');
});

t.test('group.commit refuses an invalid spec with problems located from the params root', async (t) => {
  const h = await startServer(t);
  const error = await h.fail('group.commit', { spec: { ...spec(), allocation: { size: -1 } } });
  t.equal(error.code, ErrorCode.invalidParams);
  t.ok(error.data.problems.some((p: { path: string }) => p.path.startsWith('/spec/allocation')), JSON.stringify(error.data));
  t.same(h.store.writes, []);
});

t.test('group.commit still stores when the preview fails, and says so by leaving the plan out', async (t) => {
  const h = await startServer(t);
  h.controller.failWith = { op: 'preview', error: new Error('provider down') };
  const res = await h.call('group.commit', { spec: spec() });
  t.same(res.result, { id: 'workers', version: 1, stored: true });
});

t.test('group.describe reports the stored version and the controller status', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const before = await h.call('group.describe', { id: 'workers' });
  t.same(before.result, { id: 'workers', version: 1, size: 3, converged: false, instances: [], update: { state: 'idle', total: 0, done: 0, failed: 0 } }, 'no pass yet: from the stored spec');

  const status = convergedStatus('workers', 1, 3);
  h.controller.statuses.set('workers', status);
  const after = await h.call('group.describe', { id: 'workers' });
  t.same(after.result, { ...status, converged: true }, 'from the controller status');
  t.same(Object.keys(after.result.instances[0]).sort(), ['config', 'health', 'id', 'link', 'state']);

  // Right after a new version is applied, a status can still carry the previous pass's verdict.
  await h.call('group.scale', { id: 'workers', size: 4 });
  h.controller.statuses.set('workers', { ...status, version: 2, size: 4 });
  const resized = await h.call('group.describe', { id: 'workers' });
  t.match(resized.result, { version: 2, size: 4, converged: false }, 'three instances are not four');
  h.controller.statuses.set('workers', { ...status, version: 2, configHash: 'cfg-new' });
  t.equal((await h.call('group.describe', { id: 'workers' })).result.converged, false, 'instances on the old config');
  // A warm pool's members are beyond the size: 4 serving and 2 warm is a converged group of size 4.
  const pooled = convergedStatus('workers', 2, 6);
  const warm = { ...pooled, size: 4, instances: pooled.instances.map((i, n) => (n >= 4 ? { ...i, warm: true } : i)) };
  h.controller.statuses.set('workers', warm);
  t.equal((await h.call('group.describe', { id: 'workers' })).result.converged, true, 'a full warm pool beyond the size');
  t.equal((await h.call('group.list', {})).result.find((g: { id: string }) => g.id === 'workers').converged, true, 'and in the list');
  h.controller.statuses.set('workers', { ...warm, instances: [...warm.instances.slice(0, 3), ...warm.instances.slice(4)] });
  t.equal((await h.call('group.describe', { id: 'workers' })).result.converged, false, 'serving members short of the size');

  t.equal((await h.fail('group.describe', { id: 'nope' })).code, ErrorCode.notFound);
});

t.test('group.list lists every group', async (t) => {
  const h = await startServer(t);
  t.same((await h.call('group.list')).result, []);
  await h.call('group.commit', { spec: spec('a', 2) });
  await h.call('group.commit', { spec: spec('b', 1) });
  h.controller.statuses.set('a', convergedStatus('a', 1, 2));
  t.same((await h.call('group.list', {})).result, [
    { id: 'a', version: 1, size: 2, instances: 2, converged: true },
    { id: 'b', version: 1, size: 1, instances: 0, converged: false },
  ]);
});

t.test('scaling stores a new version within bounds', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('workers', 3) });
  t.same((await h.call('group.scale', { id: 'workers', size: 5 })).result, { id: 'workers', version: 2, size: 5, changed: true });
  t.same((await h.call('group.scaleUp', { id: 'workers' })).result, { id: 'workers', version: 3, size: 6, changed: true });
  t.same((await h.call('group.scaleUp', { id: 'workers', count: 2 })).result, { id: 'workers', version: 4, size: 8, changed: true });
  t.same((await h.call('group.scaleDown', { id: 'workers', count: 3 })).result, { id: 'workers', version: 5, size: 5, changed: true });
  t.same((await h.call('group.scale', { id: 'workers', size: 5 })).result, { id: 'workers', version: 5, size: 5, changed: false }, 'same size: nothing stored');
  // Five versions stored, each applied; the unchanged call applies the version in force again (idempotent).
  t.same(h.controller.calls.filter((c) => c.op === 'apply').map((c) => c.arg), [1, 2, 3, 4, 5, 5]);

  const writes = [...h.store.writes];
  for (const [method, params] of [
    ['group.scale', { id: 'workers', size: 11 }],
    ['group.scale', { id: 'workers', size: 0 }],
    ['group.scaleUp', { id: 'workers', count: 6 }],
    ['group.scaleDown', { id: 'workers', count: 5 }],
  ] as const) {
    const error = await h.fail(method, params);
    t.equal(error.code, ErrorCode.outOfBounds, `${method} ${JSON.stringify(params)}`);
    t.match(error.data, { min: 1, max: 10 });
  }
  t.same(h.store.writes, writes, 'nothing stored out of bounds');
  t.equal((await h.fail('group.scale', { id: 'nope', size: 1 })).code, ErrorCode.notFound);
});

t.test('a logical-id group cannot be scaled by size', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('managers', 0, { allocation: { logicalIds: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] } }) });
  const error = await h.fail('group.scaleUp', { id: 'managers' });
  t.equal(error.code, ErrorCode.invalidParams);
  t.match(error.message, /logicalIds/);
  t.equal(h.store.writes.length, 1);
});

t.test('group.destroyInstances stores a version naming exactly those instances; a retry changes nothing', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('workers', 4) });
  const status = convergedStatus('workers', 1, 4);
  h.controller.statuses.set('workers', status);
  const ids = [status.instances[0]!.id, status.instances[2]!.id];
  const res = await h.call('group.destroyInstances', { id: 'workers', instanceIds: ids });
  t.same(res.result, { id: 'workers', version: 2, size: 2, destroyed: ids, removing: [] });
  t.same(h.controller.calls.slice(-2), [
    { op: 'instances', id: 'workers' },
    { op: 'apply', id: 'workers', arg: 2 },
  ]);
  t.same((await h.store.get('workers'))?.state?.removing, ids, 'the stored version names them, for any leader');

  const writes = h.store.writes.length;
  const retry = await h.call('group.destroyInstances', { id: 'workers', instanceIds: ids });
  t.same(retry.result, { id: 'workers', version: 2, size: 2, destroyed: ids, removing: [] }, 'a retry is a no-op');
  t.equal(h.store.writes.length, writes, 'and stores nothing');
  t.same(h.controller.statuses.get('workers')!.instances.map((i) => i.id), [status.instances[1]!.id, status.instances[3]!.id], 'no other machine named');

  const unknown = await h.fail('group.destroyInstances', { id: 'workers', instanceIds: ['i-unknown'] });
  t.equal(unknown.code, ErrorCode.notFound);
  t.same(unknown.data.instanceIds, ['i-unknown']);
  const mixed = await h.fail('group.destroyInstances', { id: 'workers', instanceIds: [status.instances[1]!.id, 'i-unknown'] });
  t.equal(mixed.code, ErrorCode.notFound, 'one unknown id: nothing changes');
  const tooMany = await h.fail('group.destroyInstances', { id: 'workers', instanceIds: [status.instances[1]!.id, status.instances[3]!.id] });
  t.equal(tooMany.code, ErrorCode.outOfBounds, 'size 0 is below bounds.min 1');
  t.equal(h.store.writes.length, writes);
});

t.test('group.destroyInstances on a logical-id group drops their logical ids', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('managers', 0, { allocation: { logicalIds: ['a', 'b', 'c'] }, bounds: {} }) });
  h.controller.statuses.set('managers', {
    ...convergedStatus('managers', 1, 0),
    instances: ['a', 'b', 'c'].map((l) => ({ id: `i-${l}`, logicalId: l, state: 'running', config: 'x', health: 'healthy' })),
  });
  const res = await h.call('group.destroyInstances', { id: 'managers', instanceIds: ['i-b'] });
  t.equal(res.result.size, 2);
  t.same((await h.store.get('managers'))?.spec.allocation, { logicalIds: ['a', 'c'] });
});

t.test('pause and resume are stored with the group, so every later leader sees them', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  t.same((await h.call('group.pause', { id: 'workers' })).result, { id: 'workers', version: 2, paused: true });
  t.same((await h.call('group.pause', { id: 'workers' })).result, { id: 'workers', version: 2, paused: true }, 'pausing again stores nothing');
  t.same((await h.store.get('workers'))?.state, { paused: true, note: 'pause' });
  t.same((await h.call('group.resume', { id: 'workers' })).result, { id: 'workers', version: 3, paused: false });
  t.same((await h.store.get('workers'))?.state, { note: 'resume' });
  t.same(
    h.controller.calls.filter((c) => c.op === 'apply').map((c) => c.arg),
    [1, 2, 2, 3],
    'each stored version applied; pausing again applies the one in force again',
  );
  const history = (await h.call('group.history', { id: 'workers' })).result;
  t.same(
    history.map((v: { note?: string; paused?: boolean }) => [v.note, v.paused ?? false]),
    [
      ['commit', false],
      ['pause', true],
      ['resume', false],
    ],
  );
  t.equal((await h.fail('group.pause', { id: 'nope' })).code, ErrorCode.notFound);
});

t.test('a size change keeps a pause; a new machine config is a new update, not paused', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('workers', 3) });
  await h.call('group.pause', { id: 'workers' });
  await h.call('group.scale', { id: 'workers', size: 4 });
  t.equal((await h.store.get('workers'))?.state?.paused, true);
  await h.call('group.commit', { spec: spec('workers', 4, { instance: { provider: 'aws', properties: { instanceType: 't3.large' } } }) });
  t.equal((await h.store.get('workers'))?.state?.paused, undefined);
});

t.test('group.rollback commits an earlier spec as the next version; history says what changed', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('workers', 3) });
  await h.call('group.scale', { id: 'workers', size: 5 });
  await h.call('group.commit', { spec: spec('workers', 5, { instance: { provider: 'aws', properties: { instanceType: 't3.large' } } }) });
  t.same((await h.call('group.rollback', { id: 'workers' })).result, { id: 'workers', version: 4, from: 2 });
  t.same((await h.call('group.rollback', { id: 'workers', version: 1 })).result, { id: 'workers', version: 5, from: 1 });
  t.equal((await h.fail('group.rollback', { id: 'workers', version: 5 })).code, ErrorCode.invalidParams, 'already there');
  t.equal((await h.fail('group.rollback', { id: 'workers', version: 9 })).code, ErrorCode.notFound);
  t.equal((await h.store.get('workers'))?.version, 5);

  const history = (await h.call('group.history', { id: 'workers' })).result;
  t.same(
    history.map((v: { version: number; changes: string[] }) => [v.version, v.changes]),
    [
      [1, ['created']],
      [2, ['size 3 -> 5']],
      [3, ['instance.properties changed']],
      [4, ['instance.properties changed']],
      [5, ['size 5 -> 3']],
    ],
  );
  t.same(
    history.map((v: { note?: string }) => v.note),
    ['commit', 'scale: size 3 -> 5', 'commit', 'rollback to v2', 'rollback to v1'],
    'history names a rollback as one',
  );
  t.ok(history.every((v: { createdAt: string }) => !Number.isNaN(Date.parse(v.createdAt))));
  t.equal((await h.fail('group.history', { id: 'nope' })).code, ErrorCode.notFound);
});

t.test('group.free forgets the spec and leaves instances; group.destroy destroys them first', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('a') });
  await h.call('group.commit', { spec: spec('b') });
  t.same((await h.call('group.free', { id: 'a' })).result, { id: 'a' });
  t.same((await h.call('group.destroy', { id: 'b' })).result, { id: 'b' });
  t.same(h.store.writes.slice(-2), ['remove a', 'remove b']);
  t.same(
    h.controller.calls.filter((c) => c.op === 'free' || c.op === 'destroy'),
    [
      { op: 'free', id: 'a' },
      { op: 'destroy', id: 'b' },
    ],
  );
  t.same((await h.call('group.list')).result, []);
  t.equal((await h.fail('group.free', { id: 'a' })).code, ErrorCode.notFound);
  t.equal((await h.fail('group.destroy', { id: 'a' })).code, ErrorCode.notFound);
});

t.test('a failing destroy keeps the spec, and the provider failure keeps its code', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const { CapstanError } = await import('../../src/errors.js');
  h.controller.failWith = { op: 'destroy', error: new CapstanError('providerFailure', 'EC2 said no', { code: 'Unavailable' }) };
  const error = await h.fail('group.destroy', { id: 'workers' });
  t.same(error, { code: ErrorCode.providerFailure, message: 'EC2 said no', data: { code: 'Unavailable' } });
  t.ok(await h.store.get('workers'));
});

t.test('an unexpected error is an opaque internal error, logged', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  h.controller.failWith = { op: 'instances', error: new Error('secret internals at /var/lib') };
  t.same(await h.fail('group.destroyInstances', { id: 'workers', instanceIds: ['i-1'] }), { code: -32603, message: 'Internal error' });
  t.match(h.logs(), /secret internals/);
});

t.test('concurrent scale calls on one group queue instead of conflicting', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('workers', 1) });
  const results = await Promise.all(Array.from({ length: 5 }, () => h.call('group.scaleUp', { id: 'workers' })));
  t.ok(results.every((r) => r.result), JSON.stringify(results.filter((r) => r.error)));
  t.equal((await h.store.get('workers'))?.version, 6);
});

t.test('a conflicting commit from elsewhere surfaces as conflict', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const commit = h.store.commit.bind(h.store);
  h.store.commit = async (s, expected) => {
    await commit(s, expected); // another replica's commit lands first
    return commit(s, expected);
  };
  t.equal((await h.fail('group.scale', { id: 'workers', size: 4 })).code, ErrorCode.conflict);
});

t.test('manager.status and rpc.discover answer without a token', async (t) => {
  const h = await startServer(t);
  const status = (await h.call('manager.status')).result;
  t.match(status, { nodeId: 'node-a', leading: true, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1', version: '0.1.0' });
  t.type(status.uptimeSeconds, 'number');
  t.same(Object.keys((await h.call('manager.status', undefined, null)).result).sort(), ['leaderAddr', 'leaderNodeId', 'leading', 'nodeId', 'since', 'version'], 'without the token: leadership and version');

  t.notOk('storeProblems' in status, 'no store problems, no field');
  const bad = { id: 'web', version: 4, config: 'capstan.group.web.v4', configId: 'x1', message: 'not JSON' };
  const withProblem = await startServer(t, { storeProblems: () => [bad] });
  t.same((await withProblem.call('manager.status')).result.storeProblems, [bad], 'a corrupt stored spec is reported');

  const doc = (await h.call('rpc.discover', {}, null)).result;
  t.equal(doc.openrpc, '1.2.6');
  t.same(
    doc.methods.map((m: { name: string }) => m.name),
    [...methodNames],
  );
  const scale = doc.methods.find((m: { name: string }) => m.name === 'group.scale');
  t.same(
    scale.params.map((p: { name: string; required: boolean }) => [p.name, p.required]),
    [
      ['id', true],
      ['size', true],
    ],
  );
  t.equal(scale.params[0].schema.$ref, '#/components/schemas/groupId');
  t.ok(doc.components.schemas.groupId);
  t.same(doc.components.errors.outOfBounds.code, ErrorCode.outOfBounds);
  // Every $ref resolves inside the document.
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
  for (const ref of new Set(refs)) {
    const [, section, name] = /#\/components\/(\w+)\/(\w+)/.exec(ref) ?? [];
    t.ok(section && doc.components[section]?.[name!], ref);
  }
});

t.test('a large describe is served from one serialization per status, whole, alone or in a batch, and forwarded', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec('big', 5, { bounds: {} }) });
  const status = convergedStatus('big', 1, 1000);
  h.controller.statuses.set('big', status);
  const expected = { ...status, converged: true };
  const res = await fetch(`${h.url}/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 'x"1', method: 'group.describe', params: { id: 'big' } }),
  });
  const text = await res.text();
  t.equal(Number(res.headers.get('content-length')), Buffer.byteLength(text));
  t.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  t.same(JSON.parse(text), { jsonrpc: '2.0', id: 'x"1', result: expected });
  t.ok(text.length > 100_000);

  const batch = await h.post(JSON.stringify([1, 2].map((id) => ({ jsonrpc: '2.0', id, method: 'group.describe', params: { id: 'big' } }))), { authorization: `Bearer ${token}` });
  t.same(batch.body, [1, 2].map((id) => ({ jsonrpc: '2.0', id, result: expected })));

  const follower = await startServer(t, { forwardPort: h.port });
  follower.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  t.same((await follower.call('group.describe', { id: 'big' })).result, expected);
});
