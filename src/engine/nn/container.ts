// Sequential and ModuleList: children stored under the fields '0', '1', ..., which is exactly how
// PyTorch names them in state dicts ('lang_adaptor.0.weight').
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** A module whose forward maps one tensor to one tensor. */
export interface TensorModule extends Module {
  forward(x: Tensor): Tensor;
}

export class ModuleList<M extends Module = Module> extends Module {
  #n = 0;
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }
  get length(): number {
    return this.#n;
  }
  append(m: M): this {
    (this as unknown as Record<string, M>)[String(this.#n++)] = m;
    return this;
  }
  at(i: number): M {
    const k = i < 0 ? i + this.#n : i;
    if (k < 0 || k >= this.#n) throw new RangeError(`ModuleList index ${i} out of range (length ${this.#n})`);
    return (this as unknown as Record<string, M>)[String(k)];
  }
  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.#n; i++) yield this.at(i);
  }
  map<R>(fn: (m: M, i: number) => R): R[] {
    return [...this].map(fn);
  }
}

/** Applies its children in order: Sequential(a, b, c).forward(x) = c(b(a(x))). */
export class Sequential extends ModuleList<TensorModule> {
  constructor(...modules: TensorModule[]) {
    super(modules);
  }
  override forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}
