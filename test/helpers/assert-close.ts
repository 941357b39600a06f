// Tolerance checks in the style of torch.testing.assert_close: |a - e| <= atol + rtol * |e|.
import assert from 'node:assert/strict';

export function flat(x: unknown): number[] {
  if (typeof x === 'number') return [x];
  if (ArrayBuffer.isView(x)) return Array.from(x as unknown as ArrayLike<number>, Number);
  if (Array.isArray(x)) return x.flatMap(flat);
  throw new Error(`flat(): cannot flatten ${typeof x}`);
}

export function assertClose(actual: unknown, expected: unknown, opts: { atol?: number; rtol?: number; what?: string } = {}): void {
  const a = flat(actual);
  const e = flat(expected);
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-5;
  assert.equal(a.length, e.length, `${opts.what ?? 'value'}: ${a.length} elements, expected ${e.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i] - e[i]);
    const ok = err <= atol + rtol * Math.abs(e[i]) || (Number.isNaN(a[i]) && Number.isNaN(e[i])) || a[i] === e[i];
    if (!ok && err > worstErr) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0)
    assert.fail(`${opts.what ?? 'value'}: element ${worst} is ${a[worst]}, expected ${e[worst]} (|err| ${worstErr.toExponential(3)}, atol ${atol}, rtol ${rtol})`);
}

/** Largest |a - e| over all elements (the two must have as many). */
export function maxAbsDiff(actual: unknown, expected: unknown): number {
  const a = flat(actual);
  const e = flat(expected);
  assert.equal(a.length, e.length, 'maxAbsDiff: different numbers of elements');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - e[i]));
  return m;
}
