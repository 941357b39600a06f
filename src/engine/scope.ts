// Tensor lifetimes. Every Tensor created inside `scope(fn)` is disposed when fn returns, except
// the tensors fn returns (they move to the enclosing scope) and those passed to `keep()`.
// This is TorchSharp's NewDisposeScope: libtorch memory is freed deterministically, not by the GC.
// What a scope owns: anything disposable (a Tensor). Structural, so scope.ts and tensor.ts do not import each other.
interface Tensor { dispose(): void }

const stack: Set<Tensor>[] = [];

/** Called by the Tensor constructor: the innermost open scope owns the new tensor. */
export function track(t: Tensor): void {
  if (stack.length) stack[stack.length - 1].add(t);
}

/** Detach t from every open scope: it lives until disposed explicitly (parameters, buffers, state). */
export function keep<T extends Tensor | Tensor[]>(t: T): T {
  for (const x of Array.isArray(t) ? t : [t]) for (const s of stack) s.delete(x);
  return t;
}

/** Number of scopes currently open (for tests and assertions). */
export function scopeDepth(): number {
  return stack.length;
}

// Tensors reachable from a returned value: a Tensor, or arrays / plain objects / Maps holding them.
function collect(v: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if ((v as { __isTensor?: boolean }).__isTensor) {
    out.add(v as Tensor);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, seen);
}

/**
 * Run fn, then dispose every tensor it created that it does not return. Returned tensors are
 * handed to the enclosing scope (or to nobody, at top level). fn must be synchronous: an async fn
 * would let other work's tensors land in this scope.
 */
export function scope<R>(fn: () => R): R {
  const mine = new Set<Tensor>();
  stack.push(mine);
  let result: R;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('scope(fn): fn must be synchronous (it returned a Promise)');
  } catch (e) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  stack.pop();
  const escaping = new Set<Tensor>();
  collect(result, escaping, new Set());
  for (const t of mine) {
    if (escaping.has(t)) {
      if (stack.length) stack[stack.length - 1].add(t);
    } else {
      t.dispose();
    }
  }
  return result;
}
