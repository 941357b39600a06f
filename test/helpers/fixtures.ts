// Where the shared golden fixtures live: ../shared/fixtures beside the checkout (as on CI), or $RDT_SHARED/fixtures.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is at dist/test/helpers/ or test/helpers/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

export function fixturesDir(): string {
  const base = process.env.RDT_SHARED ? resolve(process.env.RDT_SHARED) : join(repoRoot(), '..', 'shared');
  const dir = join(base, 'fixtures');
  if (!existsSync(dir)) throw new Error(`golden fixtures not found at ${dir}; set RDT_SHARED to the shared/ folder`);
  return dir;
}

export function fixture(...parts: string[]): string {
  return join(fixturesDir(), ...parts);
}
