// Safe evaluation: constraints, labels and platforms are user text. Whatever they hold (inherited property names,
// random strings), judging a task never throws, and a hostile task costs only itself a decision: a task that fits
// still gets its machine in the same decision.
import t from 'tap';
import fc from 'fast-check';
import { constraintMisfit, decide } from '../../src/autoscale/decide.js';
import { state, task } from './fixtures.js';

const inherited = ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__'];
const key = fc.oneof(fc.constantFrom(...inherited), fc.string({ maxLength: 12 }));
const constraint = fc.oneof(
  fc.tuple(fc.constantFrom('node.labels.', 'engine.labels.', 'NODE.LABELS.', 'node.platform.', ''), key, fc.constantFrom('==', '!=', '=', ''), fc.oneof(key, fc.string())).map(([a, b, c, d]) => `${a}${b}${c}${d}`),
  fc.string({ maxLength: 40 }),
);
const machine = { role: 'worker' as const, labels: { zone: 'a' }, engineLabels: {}, os: 'linux', architecture: 'x86_64' };

t.test('judging a constraint never throws, whatever it says', async (t) => {
  fc.assert(
    fc.property(constraint, (c) => {
      const why = constraintMisfit(c, machine);
      return why === undefined || typeof why === 'string';
    }),
    { numRuns: 5000 },
  );
  t.match(constraintMisfit('node.labels.constructor==x', machine), /is not met \(node\.labels\.constructor is ""\)/, 'an inherited name is an absent label');
  t.equal(constraintMisfit('node.labels.constructor!=x', machine), undefined);
});

t.test('a hostile pending task does not stop the decision about the others', async (t) => {
  fc.assert(
    fc.property(fc.array(constraint, { minLength: 1, maxLength: 4 }), key, (constraints, arch) => {
      const s = state({
        pending: [
          task('hostile', { since: 0, constraints, platforms: [{ os: 'linux', architecture: arch }], limits: { [arch]: 1 } }),
          task('plain', { since: 0 }),
        ],
      });
      const decisions = decide(s).decisions;
      // The plain task fits a new machine of web: a scale-up that includes it, hostile neighbour or not.
      return decisions.some((d) => d.action === 'scale-up' && d.group === 'web' && (d.tasks ?? []).includes('plain'));
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 hostile neighbours, every decision made');
});
