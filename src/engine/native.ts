// Loads the libtorch addon built by `npm run build:native` (build/rdt_native.node).
// Every native function takes tensor handles (opaque externals) and plain JS values.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An opaque reference to a libtorch tensor, owned by exactly one Tensor. */
export type Handle = { readonly __handle: unique symbol };
/** An opaque reference to a libtorch Generator. */
export type GenHandle = { readonly __gen: unique symbol };

function findAddon(): string {
  // dist/src/engine/native.js and src/engine/native.ts both sit three levels below the root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'rdt_native.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error(
    'rdt-libero: the native addon build/rdt_native.node is missing. Run `npm run build:native` ' +
      '(it needs `pip install torch` or LIBTORCH=/path/to/libtorch).',
  );
}

// The addon's exports are registered dynamically by OP(name) in native/*.cc.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const N: Record<string, (...args: any[]) => any> = createRequire(import.meta.url)(findAddon());
