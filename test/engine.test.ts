import t from 'tap';
import { engine } from './support/engine.js';

t.test('the tests run against a real Swarm manager', async (t) => {
  const info = await engine().info();
  t.equal(info.Swarm.LocalNodeState, 'active');
  t.equal(info.Swarm.ControlAvailable, true);
});
