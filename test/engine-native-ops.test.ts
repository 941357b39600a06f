// The native op table is declared once (src/engine/native_ops.ts): its names must be exactly the addon's
// exports, and each op must be declared under the native file that defines it. The reference for both is
// independent of the declaration: the built addon's own export list, and the OP(...) lines of native/*.cc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATIVE_FILES, NATIVE_OP_FILE, opTableMismatch } from '../src/engine/native_ops.js';
import { N } from '../src/engine/native.js';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'native', 'common.h'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root (native/common.h) not found above the test');
    dir = up;
  }
  return dir;
}
const root = repoRoot();

test('the addon exports exactly the declared ops', () => {
  const addon = createRequire(import.meta.url)(join(root, 'build', 'rdt_native.node')) as Record<string, unknown>;
  const exported = Object.keys(addon).sort();
  assert.deepEqual(exported, [...NATIVE_OP_FILE.keys()].sort());
  for (const name of exported) assert.equal(typeof addon[name], 'function', name);
  assert.equal(opTableMismatch(exported, 'addon'), null);
  // The loaded, typed table is the addon itself.
  assert.equal(typeof N.add, 'function');
});

test('each op is declared under the native file whose OP(...) lines define it', () => {
  // OP(name) and the one-line family macros (UNARY, BINARY, COMPARE) that expand to OP(name); the lines of a
  // #define (up to the first line not ending in a backslash) are the macros' own bodies, not ops.
  const def = /^\s*(?:OP|UNARY|BINARY|COMPARE)\((\w+)/;
  const files = readdirSync(join(root, 'native')).filter((f) => f.endsWith('.cc')).sort();
  assert.deepEqual(Object.keys(NATIVE_FILES).sort(), files, 'one group per native .cc file');
  for (const file of files) {
    const src = readFileSync(join(root, 'native', file), 'utf8');
    const names: string[] = [];
    let inDefine = false;
    for (const line of src.split('\n')) {
      const macroLine: boolean = inDefine || line.startsWith('#define');
      inDefine = macroLine && line.trimEnd().endsWith('\\');
      const m = macroLine ? null : def.exec(line);
      if (m) names.push(m[1]);
    }
    names.sort();
    assert.deepEqual(Object.keys(NATIVE_FILES[file as keyof typeof NATIVE_FILES]).sort(), names, file);
  }
});

test('a mismatch names every missing and extra op and what to do', () => {
  const names = [...NATIVE_OP_FILE.keys()].filter((n) => n !== 'add' && n !== 'sdpa').concat(['fooBar']);
  const msg = opTableMismatch(names, 'build/rdt_native.node');
  assert.ok(msg);
  assert.match(msg, /^build\/rdt_native\.node: /);
  assert.match(msg, /2 declared op\(s\) missing from the addon: add \(native\/ops_math\.cc\), sdpa \(native\/ops_nn\.cc\); rebuild it with `npm run build:native`/);
  assert.match(msg, /1 op\(s\) exported by the addon but not declared in src\/engine\/native_ops\.ts: fooBar;/);
  assert.ok(!msg.includes('\n'), 'one line');
});
