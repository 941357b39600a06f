// Loads the libtorch addon built by `npm run build:native` (build/rdt_native.node) and types it with the op
// table declared once in native_ops.ts. Every native function takes tensor handles (opaque externals) and
// plain JS values.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineError } from './errors.js';
import { opTableMismatch, type NativeOps } from './native_ops.js';

export type { Handle, GenHandle, GroupHandle, ReducerHandle, ReducerStep, NativeOps } from './native_ops.js';

function findAddon(): string {
  // dist/src/engine/native.js and src/engine/native.ts both sit three levels below the root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'rdt_native.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new EngineError(
    'the native addon build/rdt_native.node is missing. Run `npm run build:native` ' +
      '(it needs `pip install torch` or LIBTORCH=/path/to/libtorch).',
  );
}

function load(): NativeOps {
  const path = findAddon();
  const addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
  // A stale or newer addon would otherwise fail only when the missing op is first called, possibly hours into
  // a run; checking ~200 names once costs microseconds.
  const mismatch = opTableMismatch(Object.keys(addon), path);
  if (mismatch) throw new EngineError(mismatch);
  return addon as NativeOps;
}

export const N: NativeOps = load();
