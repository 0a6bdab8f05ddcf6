// The operator's allowlists (src/providers/allow.ts) and what the docker and aws kinds refuse without them. Pure:
// no engine, no endpoint.
import t from 'tap';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { validateSpec } from '../../src/group/spec.js';
import { providerKinds } from '../../src/main.js';
import { operatorSettings } from '../../src/settings.js';
import { silentLogger } from '../../src/log.js';
import { endpointAllowed, engineAddress, engineAllowed, parseAllowList } from '../../src/providers/allow.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { InvalidError } from '../../src/errors.js';

t.test('engine addresses are compared as the Docker client reaches them', async (t) => {
  t.equal(engineAddress('/var/run/docker.sock'), 'unix:///var/run/docker.sock');
  t.equal(engineAddress('unix:///run/x/../capstan-infra//docker.sock'), 'unix:///run/capstan-infra/docker.sock');
  t.equal(engineAddress('tcp://Infra.Example:2376'), 'tcp://infra.example:2376');
  t.equal(engineAddress('tcp://10.0.0.2'), 'tcp://10.0.0.2:2375', "Docker's default port");
  t.equal(engineAddress('tcp://allowed:2375@evil:2375/x'), 'tcp://evil:2375', 'userinfo and path do not change where requests go');
  t.equal(engineAddress('unix://relative.sock'), undefined);
  t.equal(engineAddress('http://x'), undefined);

  t.ok(engineAllowed('unix:///var/run/docker.sock'), 'the local socket needs nothing');
  t.ok(engineAllowed('/run/docker.sock'));
  t.notOk(engineAllowed('unix:///run/capstan-infra/docker.sock'));
  t.notOk(engineAllowed('unix:///var/run/../../tmp/docker.sock'), 'no way round by ..');
  t.notOk(engineAllowed('tcp://127.0.0.1:2375'));
  const allow = { endpoints: ['/run/capstan-infra/docker.sock', 'tcp://10.77.0.2:2375', 'https://ec2.internal.example/'] };
  t.ok(engineAllowed('unix:///run/capstan-infra/docker.sock', allow));
  t.ok(engineAllowed('tcp://10.77.0.2', allow));
  t.notOk(engineAllowed('tcp://10.77.0.2:2376', allow));
  t.notOk(engineAllowed('tcp://10.77.0.20:2375', allow), 'an address is exact, not a prefix');
});

t.test('endpoints match URL prefixes as URLs: scheme, host and port, then the path at a segment boundary', async (t) => {
  const allow = { endpoints: ['https://ec2.internal.example', 'http://127.0.0.1:5000/moto/', 'https://vpce.example/ec2'] };
  t.ok(endpointAllowed('https://ec2.internal.example', allow));
  t.ok(endpointAllowed('https://EC2.internal.example:443/any/path', allow), 'host case and the default port do not matter');
  t.notOk(endpointAllowed('https://ec2.internal.example.evil.com', allow), 'not a string prefix');
  t.notOk(endpointAllowed('https://ec2.internal.example@evil.com', allow));
  t.notOk(endpointAllowed('https://user:pw@ec2.internal.example', allow), 'credentials in a URL are never allowed');
  t.notOk(endpointAllowed('http://ec2.internal.example', allow), 'the scheme counts');
  t.notOk(endpointAllowed('https://ec2.internal.example:8443', allow), 'the port counts');
  t.ok(endpointAllowed('http://127.0.0.1:5000/moto/x', allow));
  t.notOk(endpointAllowed('http://127.0.0.1:5000/motox', allow));
  t.ok(endpointAllowed('https://vpce.example/ec2/', allow));
  t.notOk(endpointAllowed('https://vpce.example/ec2-other', allow));
  t.notOk(endpointAllowed('https://ec2.us-east-1.amazonaws.com'), 'no endpoint at all is how AWS is named by default');
});

t.test('CAPSTAN_ALLOW_ENDPOINTS is parsed strictly: a typo fails the start', async (t) => {
  t.same(parseAllowList(undefined), []);
  t.same(parseAllowList(' https://a.example/ , tcp://10.0.0.2:2375,,/run/x.sock '), ['https://a.example/', 'tcp://10.0.0.2:2375', '/run/x.sock']);
  t.throws(() => parseAllowList('a.example'), /"a.example" is neither/);
  t.throws(() => parseAllowList('https://user:pw@a.example'), /no credentials/);
  t.throws(() => parseAllowList('https://a.example/?x=1'), /is neither/);
  t.throws(() => parseAllowList('ftp://a.example'), /is neither/);
});

t.test('the operator settings, and the simulator only when enabled', async (t) => {
  const names = (env: NodeJS.ProcessEnv) => providerKinds(operatorSettings(env), silentLogger).map((k) => k.name);
  t.same(names({}), ['docker', 'aws']);
  t.same(names({ CAPSTAN_ENABLE_SIMULATOR: '1' }), ['docker', 'aws', 'simulator']);
  t.same(names({ CAPSTAN_ENABLE_SIMULATOR: 'true' }), ['docker', 'aws'], 'only 1 enables it');
  t.same(operatorSettings({}), { maxGroupSize: 1000, allow: { endpoints: [], privileged: false }, simulator: false });
  t.same(operatorSettings({ CAPSTAN_MAX_GROUP_SIZE: '5000', CAPSTAN_ALLOW_ENDPOINTS: 'tcp://h:1', CAPSTAN_ALLOW_PRIVILEGED: '1' }), { maxGroupSize: 5000, allow: { endpoints: ['tcp://h:1'], privileged: true }, simulator: false });
  t.throws(() => operatorSettings({ CAPSTAN_MAX_GROUP_SIZE: 'lots' }), /CAPSTAN_MAX_GROUP_SIZE=lots/);
  t.throws(() => operatorSettings({ CAPSTAN_MAX_GROUP_SIZE: '-1' }), /CAPSTAN_MAX_GROUP_SIZE/);
  t.throws(() => operatorSettings({ CAPSTAN_ALLOW_ENDPOINTS: 'nope' }), /CAPSTAN_ALLOW_ENDPOINTS/);

  // A spec naming the simulator where it is not enabled is refused like any unknown provider.
  const plugins = { providers: new Map(providerKinds(operatorSettings({}), silentLogger).map((k) => [k.name, k])), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
  const error = t.throws(() => validateSpec({ id: 'a', allocation: { size: 1 }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla' } }, plugins)) as InvalidError;
  t.match(error.problems, [{ path: '/instance/provider', message: /unknown provider "simulator"; known: docker, aws/ }]);
});

t.test('docker: privileged, the host network and capabilities beyond the defaults need the operator', async (t) => {
  const strict = dockerProviderKind({ logger: silentLogger });
  const trusting = dockerProviderKind({ logger: silentLogger, allow: { privileged: true, endpoints: ['tcp://10.0.0.1:2375'] } });
  t.same(strict.validate!({}), [], 'the default machine');
  t.same(strict.validate!({ capAdd: ['NET_ADMIN'], capDrop: ['ALL'], network: 'machines', securityOpt: [] }), [], 'less than the default');
  t.same(strict.validate!({ capAdd: ['ALL'], capDrop: ['cap_sys_resource'] }), [], 'the defaults written out');
  t.match(strict.validate!({ privileged: true }), [/^\/privileged: .*CAPSTAN_ALLOW_PRIVILEGED=1/]);
  t.match(strict.validate!({ network: 'host' }), [/^\/network: "host"/]);
  t.match(strict.validate!({ network: 'container:capstan' }), [/^\/network: /]);
  t.match(strict.validate!({ capDrop: [] }), [/^\/capDrop: grants SYS_RESOURCE/]);
  t.match(strict.validate!({ capAdd: ['CAP_SYS_RESOURCE'] }), [/^\/capAdd: grants SYS_RESOURCE/]);
  t.match(strict.validate!({ engine: 'tcp://10.0.0.1:2375' }), [/^\/engine: engine tcp:\/\/10.0.0.1:2375 is not allowed/]);
  t.same(trusting.validate!({ engine: 'tcp://10.0.0.1:2375', privileged: true, network: 'host', capDrop: [] }), []);
  t.match(strict.validate!({ engine: 'http://x' }), [/^\/engine: must match pattern/], 'schema problems come first');
});

t.test('aws: an endpoint at all needs the operator', async (t) => {
  const properties = { region: 'eu-west-1', subnetIds: ['subnet-0a'], launch: { ImageId: 'ami-1' } };
  const strict = awsProviderKind({ logger: silentLogger });
  t.same(strict.validate!(properties), []);
  t.match(strict.validate!({ ...properties, endpoint: 'https://ec2.eu-west-1.amazonaws.com' }), [/^\/endpoint: endpoint https:\/\/ec2.eu-west-1.amazonaws.com is not allowed/]);
  t.same(strict.validate!({ ...properties, endpoint: 'http://[nope' }), ['/endpoint: not a URL: http://[nope'], 'one problem for a URL that does not parse');
  const trusting = awsProviderKind({ logger: silentLogger, allow: { endpoints: ['https://vpce-1.ec2.eu-west-1.vpce.amazonaws.com'] } });
  t.same(trusting.validate!({ ...properties, endpoint: 'https://vpce-1.ec2.eu-west-1.vpce.amazonaws.com' }), []);
  t.equal(trusting.validate!({ ...properties, endpoint: 'https://vpce-2.ec2.eu-west-1.vpce.amazonaws.com' }).length, 1);
});
