// Every op family attaches its methods to Tensor.prototype on import; torch.* functions are re-exported.
import './math.js';
export * from './shape.js';
export * from './unary.js';
export * from './reduce.js';
export * from './compare.js';
export * from './indexing.js';
export * from './random.js';
