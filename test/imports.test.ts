// The import check of scripts/check-imports.mjs (docs/architecture.md's layers): src/ passes it, and in a planted
// tree it names a cycle held by a type-only import, an import up the layers, one between train/eval/serve, and
// one into cli, each on its own line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from './helpers/fixtures.js';

const SCRIPT = join(repoRoot(), 'scripts', 'check-imports.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'rdt-imports-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function run(root?: string): { status: number; out: string } {
  try {
    return { status: 0, out: execFileSync(process.execPath, [SCRIPT, ...(root ? [root] : [])], { encoding: 'utf8' }) };
  } catch (e) {
    const err = e as { status: number; stdout: string };
    return { status: err.status, out: err.stdout };
  }
}

function plant(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, 'src', path)), { recursive: true });
    writeFileSync(join(root, 'src', path), text);
  }
}

test('src/ has no import cycle and no import up the layers', () => {
  const { status, out } = run();
  assert.equal(status, 0, out);
  assert.match(out, /^imports: ok/m);
});

test('a planted cycle, back-arrow, peer import and cli import are each named on one line', () => {
  const root = join(tmp, 'bad');
  plant(root, {
    'engine/a.ts': "import type { B } from './b.js';\nexport type A = B[];\n",
    'engine/b.ts': "import { type A } from './a.js';\nexport type B = { a: A };\n",
    'model/m.ts': "export { x } from '../policy/p.js';\n",
    'policy/p.ts': "export const x = 1;\n",
    'eval/e.ts': "export const e = await import('../serve/s.js');\n",
    'serve/s.ts': "import '../cli/c.js';\n",
    'cli/c.ts': "import { e } from '../eval/e.js';\nexport const c = e;\n",
  });
  const { status, out } = run(root);
  assert.equal(status, 1, out);
  assert.deepEqual(out.trim().split('\n').sort(), [
    'back-arrow: src/eval/e.ts imports src/serve/s.ts (train, eval, serve must not import each other)',
    'back-arrow: src/model/m.ts imports src/policy/p.ts (model is below policy)',
    'back-arrow: src/serve/s.ts imports src/cli/c.ts (nothing imports cli)',
    'cycle: src/cli/c.ts -> src/eval/e.ts -> src/serve/s.ts -> src/cli/c.ts',
    'cycle: src/engine/a.ts -> src/engine/b.ts -> src/engine/a.ts',
  ]);
});

test('a folder outside the layers is refused; a clean tree passes', () => {
  const root = join(tmp, 'clean');
  plant(root, { 'util/u.ts': 'export const u = 1;\n', 'train/t.ts': "import { u } from '../util/u.js';\nexport const t = u;\n" });
  assert.equal(run(root).status, 0);
  plant(root, { 'misc/x.ts': "export { t } from '../train/t.js';\n" });
  const { status, out } = run(root);
  assert.equal(status, 1);
  assert.match(out, /^layer: src\/misc\/x\.ts is in src\/misc\/, which is in no layer/m);
});
