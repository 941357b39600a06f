// Where the golden fixtures live: test/fixtures in this repository (test/fixtures/README.md names the producer of
// each file). RDT_FIXTURES=DIR runs the same tests against another configuration of the same format (every size
// is read from the files); RDT_SHARED=DIR, the older way to say it, means DIR/fixtures.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is at dist/test/helpers/ or test/helpers/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/** The fixtures this repository carries, whatever RDT_FIXTURES says. */
export function repoFixturesDir(): string {
  return join(repoRoot(), 'test', 'fixtures');
}

export function fixturesDir(): string {
  const dir = process.env.RDT_FIXTURES ? resolve(process.env.RDT_FIXTURES)
    : process.env.RDT_SHARED ? join(resolve(process.env.RDT_SHARED), 'fixtures') : repoFixturesDir();
  if (!existsSync(dir)) throw new Error(`golden fixtures not found at ${dir}; unset RDT_FIXTURES/RDT_SHARED to use test/fixtures`);
  return dir;
}

export function fixture(...parts: string[]): string {
  return join(fixturesDir(), ...parts);
}
