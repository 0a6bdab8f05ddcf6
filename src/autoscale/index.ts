// Autoscaling (issue 7): the pure decision and the Swarm watcher that feeds it and acts on it.
export { decide, preview } from './decide.js';
export { constraintMisfit } from './placement.js';
export { autoscaleProblems, autoscaleSchema, bytesOf, policyOf, type AutoscalePolicy } from './policy.js';
export { SCHEDULER_GRACE_MS } from './state.js';
export type { Action, AutoscaleState, Decision, GroupView, NodeView, Outcome, PendingTask, Reason, Tried } from './state.js';
export { Autoscaler, autoscaleDecisions, type AutoscalerOptions } from './watch.js';
