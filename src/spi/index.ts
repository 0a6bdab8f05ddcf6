export type * from './instance.js';
export type * from './flavor.js';
export type * from './group.js';
// Shared words: tag names, durations and quantities.
export { TAG } from './tags.js';
export { durationMs, resolveQuantity } from './quantity.js';
