// End-to-end: Capstan deployed as a stack on a real 3-manager Swarm (swarm/lab.sh), machines as docker-in-docker
// containers on the lab's infrastructure engine. One lab for the whole run (bringing it up is the slow part),
// scenarios in sequence, each starting from the state the previous one left. Part of `npm test` (about 7-9
// minutes on 2 cores, lab up included; root, creates network namespaces); CAPSTAN_E2E=0 leaves it out while
// iterating on other tests:
//   npx tap test/e2e/lab.test.ts
// Set CAPSTAN_BUILD_DIR to a directory of your own to keep the image build cache between runs (saves ~90 s).
// While working on scenarios: CAPSTAN_E2E_LAB=<dir> runs on a lab already up (`LAB=<dir> swarm/lab.sh up`; left
// up afterwards), and CAPSTAN_E2E_ONLY=name,name runs only those scenarios (the names below).
// Figures are printed as t.comment and as `MEASURE name value` lines on stderr.
import t, { type Test } from 'tap';
import { Lab } from '../support/lab.js';
import { killDuringScaleUp, oneActs, replaceDestroyed, replicasRestarted, resources, rollingUpdate, scaleDown, scaleUp } from './basics.js';
import { measure, restart, since, syncGeneration } from './common.js';
import { pausedUpdate, settledKills } from './failover.js';
import { sigtermMidScaleUp } from './shutdown.js';
import { warmPool } from './warm.js';
import { stopAll } from './watchers.js';

const scenarios: [name: string, title: string, run: (t: Test, lab: Lab) => Promise<void>][] = [
  ['acts', 'exactly one replica acts; a call to a non-leader is forwarded', oneActs],
  ['scale', 'scale 0 -> 3 -> 6', scaleUp],
  ['update', 'rolling update of 6 workers: never more than maxUnavailable missing, drain before destroy', rollingUpdate],
  ['settled-kills', 'a settled group of 6 older than healthTimeout keeps exactly its machines through 3 leader kills, no ghost node', settledKills],
  ['paused-update', 'a paused update stays paused through a leader kill; resumed, a kill mid-update keeps maxUnavailable', pausedUpdate],
  ['scale-down', 'scale 6 -> 2: removed nodes drained and gone', scaleDown],
  ['scale-up-failover', 'leader killed during a scale-up: the new leader finishes with exactly the requested machines', killDuringScaleUp],
  ['sigterm', 'the leader’s replica stopped with SIGTERM during a scale-up: exits by itself in time, nothing written after', sigtermMidScaleUp],
  ['replace', 'a machine destroyed behind Capstan’s back is replaced and its Down node removed', replaceDestroyed],
  ['replica-restarts', 'every replica restarted during a rolling update: it resumes and completes', replicasRestarted],
  ['warm', 'a warm pool: a pending task runs on the warm machine’s node, the pool refilled once; a scale-down takes the empty member', warmPool],
  ['resources', 'resources', resources],
];

if (process.env.CAPSTAN_E2E === '0') {
  t.plan(0, 'end-to-end lab tests switched off by CAPSTAN_E2E=0');
} else {
  t.setTimeout(20 * 60_000);
  const only = process.env.CAPSTAN_E2E_ONLY?.split(',').filter(Boolean);
  const unknown = only?.filter((n) => !scenarios.some(([name]) => name === n)) ?? [];
  if (unknown.length) throw new Error(`CAPSTAN_E2E_ONLY: no scenario ${unknown.join(', ')}`);
  const tUp = Date.now();
  const attach = process.env.CAPSTAN_E2E_LAB;
  const lab = attach ? Lab.attach(attach) : await Lab.up(3, (l) => t.comment(l));
  if (!attach) {
    t.teardown(() => lab.down());
    // tap's teardown does not run when the run is interrupted: tear down on signals too.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        lab.downSync();
        process.exit(130);
      });
    }
    measure(t, 'lab_up', since(tUp));
  }
  if (attach) await syncGeneration(lab);
  for (const [name, title, run] of scenarios) {
    if (only && !only.includes(name)) continue;
    const t0 = Date.now();
    await t.test(title, (tt) => run(tt, lab));
    measure(t, `scenario_${name}`, since(t0));
    // A scenario that failed half-way: its watchers stop, a manager it killed comes back, the next one runs.
    await stopAll();
    for (const n of [...lab.killed]) await restart(lab, n).catch((error) => t.comment(`could not restart ${n}: ${String(error)}`));
  }
}
