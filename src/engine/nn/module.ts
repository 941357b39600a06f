// nn.Module and nn.Parameter. A module's state-dict names fall out of its fields: every field
// holding a Parameter or a Module is registered under the field's name, in the order the fields
// were defined (PyTorch's registration order), with no separate name store. Buffers are declared
// with registerBuffer(). Parameters and buffers are kept: no scope ever disposes them.
import { N } from '../native.js';
import { Tensor, EngineError, type Device } from '../tensor.js';
import { isFloating, type DType } from '../dtype.js';
import { noGrad } from '../autograd.js';

/**
 * A tensor that is a module's learnable state: kept (never scope-owned), requires grad by default.
 * `new Parameter(t)` takes ownership of t: t's handle is disposed and the Parameter shares its storage.
 */
export class Parameter extends Tensor {
  readonly __isParameter = true;
  constructor(data: Tensor, requiresGrad = true) {
    super(N.detach(data.h));
    data.dispose();
    this.keep();
    if (requiresGrad) this.requiresGrad_(true);
  }
  /**
   * Swap the storage under this parameter for t's (same shape; dtype and device may differ), keeping
   * its identity, so optimizers and modules that hold it see the new data (PyTorch's `p.data = t`).
   * t itself stays owned by the caller.
   */
  setData(t: Tensor): this {
    setTensorData(this, t);
    return this;
  }
}

/** Replace t's storage by src's (same shape). Used for parameters and buffers alike. */
export function setTensorData(t: Tensor, src: Tensor): void {
  const a = t.shape;
  const b = src.shape;
  if (a.length !== b.length || a.some((d, i) => d !== b[i]))
    throw new EngineError(`setData: shape [${b}] differs from the tensor's shape [${a}]; make a new Parameter instead`);
  N.setData(t.h, src.h);
}

export class StateDictError extends EngineError {
  override name = 'StateDictError';
  constructor(
    message: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly misShaped: string[],
    readonly misTyped: string[],
  ) {
    super(message);
  }
}

export interface LoadStateDictOptions {
  /** Missing and unexpected keys are errors (default true). Shape and dtype mismatches always are. */
  strict?: boolean;
  /** Convert tensors whose dtype differs from the parameter's (default false: a dtype mismatch is an error). */
  castDtype?: boolean;
  /** Where the state dict came from (a file path), for the error message. */
  source?: string;
}

type StateMap = Map<string, Tensor> | Record<string, Tensor>;

interface BufferEntry {
  t: Tensor | null;
  persistent: boolean;
}

export class Module {
  /** Training mode (dropout active); switch with train()/eval(). */
  training = true;
  readonly #buffers = new Map<string, BufferEntry>();

  /** The computation; subclasses define it with their own signature. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  forward(..._args: any[]): any {
    throw new EngineError(`${this.constructor.name} has no forward()`);
  }

  /**
   * Register a (non-parameter) tensor as module state, saved in the state dict unless persistent is
   * false. The module keeps it (t leaves any scope) and exposes it as this[name].
   */
  registerBuffer(name: string, t: Tensor | null, opts: { persistent?: boolean } = {}): void {
    if (name in this && !this.#buffers.has(name) && (this as Record<string, unknown>)[name] !== undefined)
      throw new EngineError(`registerBuffer: '${name}' is already a field of ${this.constructor.name}`);
    t?.keep();
    this.#buffers.set(name, { t, persistent: opts.persistent ?? true });
    Object.defineProperty(this, name, {
      get: () => this.#buffers.get(name)!.t,
      set: (v: Tensor | null) => {
        v?.keep();
        this.#buffers.get(name)!.t = v;
      },
      enumerable: false,
      configurable: true,
    });
  }

  /** Own parameters, by field name, in definition order (null fields, e.g. bias=false, skipped). */
  #ownParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [k, v] of this.#fields()) if (v instanceof Parameter) out.push([k, v]);
    return out;
  }
  /**
   * Own enumerable fields. A plain array or Map holding modules or parameters is an error rather
   * than silently left out of the state dict and the optimizer (PyTorch ignores plain lists too).
   */
  #fields(): [string, unknown][] {
    const entries = Object.entries(this);
    for (const [k, v] of entries) {
      if (!(Array.isArray(v) || v instanceof Map)) continue;
      for (const x of v instanceof Map ? v.values() : v)
        if (x instanceof Module || x instanceof Parameter)
          throw new EngineError(`${this.constructor.name}.${k} holds ${x instanceof Module ? 'modules' : 'parameters'} in a plain ` +
            `${Array.isArray(v) ? 'array' : 'Map'}, so they would be missing from the state dict and the optimizer; ` +
            `use nn.ModuleList (or one field per parameter)`);
    }
    return entries;
  }
  #ownBuffers(persistentOnly: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, e] of this.#buffers) if (e.t && (!persistentOnly || e.persistent)) out.push([k, e.t]);
    return out;
  }

  /** Direct submodules, by field name, in definition order. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of this.#fields()) if (v instanceof Module) out.push([k, v]);
    return out;
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and all below it, pre-order, each once ('' names this module). */
  namedModules(prefix = '', memo = new Set<Module>()): [string, Module][] {
    if (memo.has(this)) return [];
    memo.add(this);
    const out: [string, Module][] = [[prefix, this]];
    for (const [k, m] of this.namedChildren()) out.push(...m.namedModules(prefix ? `${prefix}.${k}` : k, memo));
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Every parameter once, with its dotted name (PyTorch's named_parameters order). */
  namedParameters(prefix = ''): [string, Parameter][] {
    const seen = new Set<Parameter>();
    const out: [string, Parameter][] = [];
    for (const [mp, m] of this.namedModules(prefix))
      for (const [k, p] of m.#ownParameters()) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([mp ? `${mp}.${k}` : k, p]);
      }
    return out;
  }
  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }
  namedBuffers(prefix = ''): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [mp, m] of this.namedModules(prefix))
      for (const [k, b] of m.#ownBuffers(false)) {
        if (seen.has(b)) continue;
        seen.add(b);
        out.push([mp ? `${mp}.${k}` : k, b]);
      }
    return out;
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /**
   * The live parameters and persistent buffers by PyTorch state-dict key (not copies): for each
   * module its own parameters, then its buffers, then its children's entries.
   */
  stateDict(prefix = ''): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const visit = (m: Module, p: string) => {
      for (const [k, t] of m.#ownParameters()) out.set(p + k, t);
      for (const [k, t] of m.#ownBuffers(true)) out.set(p + k, t);
      for (const [k, c] of m.namedChildren()) visit(c, `${p}${k}.`);
    };
    visit(this, prefix ? `${prefix}.` : '');
    return out;
  }

  /**
   * Copy a state dict into this module's parameters and buffers, in place and without autograd.
   * Checks everything first and reports every missing, unexpected, mis-shaped and mis-typed key in
   * one StateDictError; nothing is copied when it throws.
   */
  loadStateDict(sd: StateMap, opts: LoadStateDictOptions = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    const strict = opts.strict ?? true;
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !own.has(k));
    const misShaped: string[] = [];
    const misTyped: string[] = [];
    for (const [k, dst] of own) {
      const s = src.get(k);
      if (!s) continue;
      const a = dst.shape;
      const b = s.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) misShaped.push(`${k}: [${b}] in the state dict, [${a}] in the module`);
      else if (!opts.castDtype && s.dtype !== dst.dtype) misTyped.push(`${k}: ${s.dtype} in the state dict, ${dst.dtype} in the module`);
    }
    const problems: string[] = [];
    const list = (title: string, keys: string[]) => {
      if (!keys.length) return;
      const shown = keys.slice(0, 20).map((k) => `    ${k}`);
      if (keys.length > 20) shown.push(`    ... and ${keys.length - 20} more`);
      problems.push(`  ${title} (${keys.length}):\n${shown.join('\n')}`);
    };
    if (strict) list('missing keys', missing);
    if (strict) list('unexpected keys', unexpected);
    list('shape mismatches', misShaped);
    list('dtype mismatches (pass castDtype: true to convert)', misTyped);
    if (problems.length) {
      const where = opts.source ? ` from ${opts.source}` : '';
      throw new StateDictError(
        `loadStateDict: cannot load the state dict${where} into ${this.constructor.name}:\n${problems.join('\n')}`,
        strict ? missing : [], strict ? unexpected : [], misShaped, misTyped,
      );
    }
    noGrad(() => {
      for (const [k, dst] of own) {
        const s = src.get(k);
        if (s) dst.copy_(s);
      }
    });
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel();
    return n;
  }

  /**
   * Convert parameters and buffers in place (floating-point ones only for dtype, as PyTorch);
   * modules, optimizers and anything else holding them keep working. Returns this.
   */
  to(opts: { dtype?: DType; device?: Device }): this {
    const convert = (t: Tensor) => {
      const dtype = opts.dtype && isFloating(t.dtype) ? opts.dtype : undefined;
      if ((!dtype || dtype === t.dtype) && (!opts.device || opts.device === t.device)) return;
      const moved = t.to({ dtype, device: opts.device });
      try {
        const g = t.grad;
        if (g) {
          t.grad = null;
          g.dispose();
        }
        setTensorData(t, moved);
      } finally {
        moved.dispose();
      }
    };
    for (const p of this.parameters()) convert(p);
    for (const b of this.buffers()) convert(b);
    return this;
  }

  requiresGrad_(requiresGrad = true): this {
    for (const p of this.parameters()) p.requiresGrad_(requiresGrad);
    return this;
  }

  /** Drop every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    N.zeroGrads(this.parameters().map((p) => p.h), true);
  }

  /** fn on every submodule (children first, then this), as PyTorch's apply. */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** Free every parameter and buffer of this module tree. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const b of this.buffers()) b.dispose();
  }
}
