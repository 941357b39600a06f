// nn: Module, Parameter, layers, init (exported as `nn`); F: the functional forms.
export * as nn from './nn.js';
export * as F from './functional.js';
