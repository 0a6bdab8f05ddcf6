/** The `docker` provider kind: machines are docker-in-docker containers, configured by schemas/docker.json. */
import type Docker from 'dockerode';
import { createLogger, type Logger } from '../../log.js';
import type { ProviderKind } from '../../spi/instance.js';
import { createDocker } from '../../docker.js';
import { MachineNames } from './names.js';
import type { OperatorAllow } from '../allow.js';
import { reportingFailures } from '../failures.js';
import { checkProperties, dockerSchema, machineConfig, operatorProblems } from './properties.js';
import { DockerInstanceProvider } from './provider.js';

export { machineName, MachineNames } from './names.js';
export { INIT_PATH } from './provider.js';
export { DEFAULT_IMAGE, type DockerProperties } from './properties.js';

export interface DockerProviderKindOptions {
  readonly logger?: Logger;
  /** Most specs per provision call (default 50). */
  readonly maxBatch?: number;
  /** Containers created or removed at once per call (default 4). */
  readonly concurrency?: number;
  /** Per Docker call (default 15 s). */
  readonly timeoutMs?: number;
  /** Engines beyond the local socket, and privileged machines, the operator allows; none by default. */
  readonly allow?: OperatorAllow;
}

export function dockerProviderKind(options: DockerProviderKindOptions = {}): ProviderKind {
  const logger = (options.logger ?? createLogger()).child({ provider: 'docker' });
  // One client and one set of given names per engine, shared by the groups that use it (at most one per allowed engine).
  const clients = new Map<string, { docker: Docker; names: MachineNames }>();
  return {
    name: 'docker',
    stoppable: true,
    schema: dockerSchema,
    validate(properties: unknown) {
      const problems = checkProperties(properties);
      return problems.length ? problems : operatorProblems(properties, options.allow);
    },
    create(properties: unknown) {
      const machine = machineConfig(properties);
      const key = machine.engine ?? '';
      let client = clients.get(key);
      if (!client) {
        client = { docker: createDocker(machine.engine, options.timeoutMs ?? 15_000), names: new MachineNames() };
        clients.set(key, client);
      }
      return reportingFailures('docker', new DockerInstanceProvider({ ...client, machine, logger, maxBatch: options.maxBatch ?? 50, concurrency: options.concurrency ?? 4 }));
    },
    // The engine that runs the machines; a change of engine moves them.
    location: (properties: unknown) => machineConfig(properties).engine ?? 'local',
  };
}
