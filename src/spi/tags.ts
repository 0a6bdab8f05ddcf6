/** Tag keys that make the infrastructure the record; every provider stores them with its machines. */
export const TAG = {
  group: 'capstan.group',
  config: 'capstan.config',
  logicalId: 'capstan.logical-id',
  /** The Swarm's cluster id: another Swarm's machines in the same cloud or engine are never this one's. */
  cluster: 'capstan.cluster',
} as const;
