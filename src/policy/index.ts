// The self-describing policy folder: policy.json (file.ts), the conventions of a run (conventions.ts) and
// loadPolicy (policy.ts).
export * from './errors.js';
export * from './file.js';
export * from './conventions.js';
export * from './inputs.js';
export * from './policy.js';
