// Autoscaling (issue 7): the pure decision and the Swarm watcher that feeds it and acts on it.
export { autoscaleProblems, autoscaleSchema, bytesOf, constraintMisfit, decide, policyOf, preview, SCHEDULER_GRACE_MS } from './decide.js';
export type { Action, AutoscalePolicy, AutoscaleState, Decision, GroupView, NodeView, Outcome, PendingTask, Reason } from './decide.js';
export { Autoscaler, autoscaleDecisions, type AutoscalerOptions } from './watch.js';
