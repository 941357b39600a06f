// Optimizers and gradient utilities.
export {};
