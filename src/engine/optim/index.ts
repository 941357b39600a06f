// Optimizers and gradient utilities (exported as `optim`).
export * as optim from './optim.js';
