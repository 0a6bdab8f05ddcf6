import fc from 'fast-check';
import t from 'tap';
import { methodNames } from '../../src/rpc/catalog.js';
import { spec, startServer, token } from './harness.js';

const readOnly = new Set(['group.describe', 'group.list', 'group.history', 'manager.status', 'rpc.discover']);
const mutations = new Set(['apply', 'pause', 'resume', 'free', 'destroyInstances', 'destroy']);

const call = fc.record(
  {
    jsonrpc: fc.oneof(fc.constant('2.0'), fc.anything()),
    method: fc.oneof(fc.constantFrom(...methodNames), fc.string(), fc.anything()),
    params: fc.oneof(fc.anything(), fc.dictionary(fc.constantFrom('id', 'size', 'count', 'spec', 'instanceIds', 'version', 'pretend', '__proto__'), fc.anything())),
    id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.anything()),
  },
  { requiredKeys: [] },
);

const body = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.json(),
  fc.anything().map((x) => JSON.stringify(x) ?? 'undefined'),
  call.map((x) => JSON.stringify(x)),
  fc.array(fc.oneof(call, fc.anything()), { maxLength: 8 }).map((x) => JSON.stringify(x)),
  fc.nat({ max: 20_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.nat({ max: 20_000 }).map((n) => '{"jsonrpc":"2.0","id":1,"method":"group.commit","params":{"spec":' + '{"a":'.repeat(n) + '1' + '}'.repeat(n) + '}}'),
);

t.test('random bodies get JSON-RPC errors and change nothing', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const before = h.store.snapshot();
  const callsBefore = h.controller.calls.length;

  await fc.assert(
    fc.asyncProperty(body, fc.constantFrom<string | undefined>(undefined, `Bearer ${token}`, 'Bearer nope'), async (text, authorization) => {
      const res = await h.post(text, authorization ? { authorization } : {});
      if (res.status === 204) return; // notifications only: nothing to answer
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 200)}`);
      const answers = Array.isArray(res.body) ? res.body : [res.body];
      for (const a of answers) {
        if (a?.jsonrpc !== '2.0' || !('id' in a)) throw new Error(`not a JSON-RPC response: ${res.text.slice(0, 200)}`);
        if (a.error) {
          if (!Number.isInteger(a.error.code) || typeof a.error.message !== 'string') throw new Error(`bad error ${JSON.stringify(a.error)}`);
          if (a.error.code === -32603) throw new Error(`internal error for ${text.slice(0, 200)}`);
        }
      }
    }),
    { numRuns: 300, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
  );

  t.equal(h.store.snapshot(), before, 'store history unchanged');
  t.same(
    h.controller.calls.slice(callsBefore).filter((c) => mutations.has(c.op)),
    [],
    'the controller was asked to change nothing',
  );
  t.same((await h.call('group.describe', { id: 'workers' })).result.version, 1, 'the server still answers');
});

t.test('random well-formed calls with the token get an error, or a result only from read-only methods', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const before = h.store.snapshot();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...methodNames), fc.oneof(fc.anything(), fc.object()), async (method, params) => {
      const res = await h.post(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), { authorization: `Bearer ${token}` });
      if (res.status !== 200 || res.body.id !== 1) throw new Error(`${res.status} ${res.text.slice(0, 200)}`);
      if (res.body.result !== undefined && !readOnly.has(method)) throw new Error(`${method} ${JSON.stringify(params)} succeeded`);
      if (res.body.error?.code === -32603) throw new Error(`internal error for ${method} ${JSON.stringify(params)}`);
    }),
    { numRuns: 300 },
  );
  t.equal(h.store.snapshot(), before, 'store history unchanged');
});
