export type * from './instance.js';
export type * from './flavor.js';
export type * from './group.js';
