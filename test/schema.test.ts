// The one validator setup and the one wording of its errors (src/schema.ts): a message per kind of error Capstan's
// schemas can produce, located by JSON Pointer.
import t from 'tap';
import { Ajv } from 'ajv';
import { readSchema } from '../src/package.js';
import { problemsOf, problemText, validator } from '../src/schema.js';

const group = readSchema('group.json');
const uses = [readSchema('autoscale.json')];
const aws = readSchema('aws.json');
const swarm = readSchema('swarm-flavor.json');

/** The problems of `value` under `schema`, validated as a copy with defaults (as specs are). */
function problems(schema: object, value: unknown, options: Parameters<typeof problemsOf>[1] = {}) {
  const validate = validator(schema, { defaults: true, uses });
  if (validate(structuredClone(value))) throw new Error(`${JSON.stringify(value)} is valid`);
  return problemsOf(validate.errors, options);
}

const spec = () => ({ id: 'web', allocation: { size: 1 }, instance: { provider: 'docker' }, flavor: { kind: 'vanilla' } });

t.test('one message per kind of error', async (t) => {
  const { id: _id, ...noId } = spec();
  t.same(problems(group, noId), [{ path: '', message: "must have required property 'id'" }], 'required: at the object lacking it');
  t.same(problems(group, { ...spec(), colour: 'red' }), [{ path: '/colour', message: 'unknown key' }], 'additionalProperties: at the unknown key');
  t.same(problems(group, { ...spec(), id: 7 }), [{ path: '/id', message: 'must be string' }], 'type');
  t.same(
    problems(group, { ...spec(), update: { onFailure: 'panic' } }),
    [{ path: '/update/onFailure', message: 'must be equal to one of the allowed values: "pause", "rollback"' }],
    'enum: the allowed values named',
  );
  t.same(problems(group, { ...spec(), bounds: { min: -1 } }), [{ path: '/bounds/min', message: 'must be >= 0' }], 'minimum');
  t.same(problems(swarm, { joinAttempts: 101 }), [{ path: '/joinAttempts', message: 'must be <= 100' }], 'maximum');
  t.match(problems(group, { ...spec(), id: 'Web_1' }), [{ path: '/id', message: /^must match pattern "/ }], 'pattern');
  t.same(
    problems(aws, { region: 'eu-west-1', subnetIds: ['subnet-1'], launch: { ImageId: 'ami-1', UserData: 'x' } }),
    [{ path: '/launch/UserData', message: 'set by Capstan, not allowed here' }],
    'a false schema: a field Capstan sets itself',
  );
  t.same(
    problems(swarm, { labels: { 'capstan.x': 'a' } }),
    [{ path: '/labels/capstan.x', message: 'key must match pattern "^(?!capstan\\.)[A-Za-z0-9][A-Za-z0-9._-]*$"' }],
    'propertyNames: at the key, said once',
  );
  t.same(problems(group, { ...spec(), update: { maxSurge: '150%' } }), [{ path: '/update/maxSurge', message: 'must match exactly one allowed form' }], 'oneOf: once, not per branch');
  t.same(
    problems(group, { ...spec(), allocation: { size: 1, logicalIds: ['a'] } }, { oneOf: { '/allocation': 'must have exactly one of size or logicalIds' } }),
    [{ path: '/allocation', message: 'must have exactly one of size or logicalIds' }],
    'oneOf: in the words its schema owner gives',
  );
  // No schema of Capstan's uses `format` (none is known to the shared validators); ajv's own message stands.
  const formats = new Ajv({ allErrors: true, formats: { day: /^\d{4}-\d\d-\d\d$/ } }).compile({ type: 'object', properties: { on: { type: 'string', format: 'day' } } });
  formats({ on: 'Tuesday' });
  t.same(problemsOf(formats.errors), [{ path: '/on', message: 'must match format "day"' }], 'format');
});

t.test('every problem located and said once; a prefix places them in a larger value', async (t) => {
  const found = problems(group, { ...spec(), id: 'Web_1', 'a/b~c': 1, update: { speed: 3, onFailure: 'x' } }, { prefix: '/spec' });
  t.same(found.map((p) => p.path).sort(), ['/spec/a~1b~0c', '/spec/id', '/spec/update/onFailure', '/spec/update/speed'], 'keys escaped as JSON Pointer segments');
  t.same(problemsOf(undefined), []);
  t.same(problemsOf([{ keyword: 'x', instancePath: '', schemaPath: '#/x', params: {} }]), [{ path: '', message: 'is invalid (x)' }], 'a message ajv did not give');
});

t.test('as a line of text: the path, "/" for the root', async (t) => {
  t.equal(problemText({ path: '', message: 'must be object' }), '/: must be object');
  t.equal(problemText({ path: '/extra', message: 'unknown key' }), '/extra: unknown key');
});

t.test('validators: compiled once, defaults only when asked, schemas referred to by $id', async (t) => {
  t.equal(validator(swarm), validator(swarm), 'the same object: the same validator');
  t.equal(validator(readSchema('autoscale.json'), { defaults: true }), validator(readSchema('autoscale.json'), { defaults: true }), 'the same $id: the same validator');
  const value = { drainTimeout: '5s' };
  t.ok(validator(swarm)(value));
  t.same(value, { drainTimeout: '5s' }, 'checking leaves the value as it was');
  t.ok(validator(swarm, { defaults: true })(value));
  t.same(value, { drainTimeout: '5s', joinAttempts: 10 }, 'filling gives it its defaults');
  const params = { $id: 'https://capstan.dev/schemas/test/uses.json', type: 'object', properties: { id: { $ref: 'https://capstan.dev/schemas/rpc/common.json#/definitions/groupId' } } };
  const check = validator(params, { uses: [readSchema('rpc/common.json')] });
  t.ok(check({ id: 'web' }));
  t.notOk(check({ id: 'Not A Label' }));
  t.throws(() => validator({ type: 'object', colour: 'red' })({}), /strict mode/, 'a schema ajv would have to guess about is refused (at its first use)');
});
