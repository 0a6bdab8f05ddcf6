// The page's types: what the API answers (schemas/rpc/), and what h() makes.
import type { VNode } from 'preact';
import type { InstanceStatus } from '../../spi/group.js';

/** What h() makes, whatever its props. */
export type El = VNode<any>;

export interface ListEntry {
  readonly id: string;
  readonly version: number;
  readonly size: number;
  readonly instances: number;
  readonly converged: boolean;
}
/** group.describe's machines, typed once for the API and the page (the import is erased from the bundle). */
export type Machine = InstanceStatus;
export interface Update {
  readonly state: 'idle' | 'rolling' | 'paused' | 'failed' | 'done';
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly reason?: string;
}
export interface Decision {
  readonly at: number;
  readonly group: string;
  readonly action: string;
  readonly reason: string;
  readonly message: string;
}
export interface Described {
  readonly id: string;
  readonly version: number;
  readonly size: number;
  readonly converged: boolean;
  readonly configHash?: string;
  readonly instances: readonly Machine[];
  readonly update: Update;
  readonly repair?: { readonly broken: number; readonly limit: number; readonly blocked?: string };
  readonly lastError?: { readonly at: string; readonly operation: string; readonly message: string };
  readonly autoscale?: readonly Decision[];
}
export type Spec = {
  readonly id: string;
  readonly allocation: { readonly size: number } | { readonly logicalIds: readonly string[] };
  readonly bounds?: { readonly min?: number; readonly max?: number };
  readonly warm?: { readonly size: number };
} & Record<string, unknown>;
export interface Version {
  readonly version: number;
  readonly createdAt: string;
  readonly size?: number;
  readonly changes: readonly string[];
  readonly note?: string;
  readonly paused?: boolean;
  readonly failure?: string;
  readonly spec?: Spec;
}
export interface Manager {
  readonly nodeId?: string;
  readonly leading: boolean;
  readonly leaderNodeId?: string;
  readonly leaderAddr?: string;
  readonly since?: string;
  readonly version: string;
}
export interface Group {
  readonly list: ListEntry;
  readonly described?: Described;
}
