// Finding LIBERO suites under a dataset root: the root itself may be one suite folder, or hold several.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { DataError } from './errors.js';

export const SUITES = ['libero_spatial', 'libero_object', 'libero_goal', 'libero_10', 'libero_90'] as const;
export type SuiteName = (typeof SUITES)[number];

export interface SuiteDir {
  /** The suite, e.g. libero_goal (a `_no_noops` folder maps to its suite). */
  suite: SuiteName;
  /** The folder's own name, e.g. libero_goal_no_noops. */
  folder: string;
  dir: string;
  files: string[];
}

export function suiteOfFolder(name: string): SuiteName | null {
  const base = name.replace(/_no_noops$/, '').replace(/_regenerated$/, '');
  return (SUITES as readonly string[]).includes(base) ? (base as SuiteName) : null;
}

function demoFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.hdf5'))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Suites found under root, in the canonical order. Throws if none. `only` selects folders by their exact name
 * (`libero_goal` is the original release, `libero_goal_no_noops` the regenerated one: different data, so one never
 * stands in for the other); a name that matches no folder is an error listing what was found.
 */
export function discoverSuites(root: string, only?: readonly string[]): SuiteDir[] {
  const abs = resolve(root);
  if (!existsSync(abs) || !statSync(abs).isDirectory())
    throw new DataError('dataset root is not a directory', { file: abs }, 'pass the folder that holds libero_spatial/, libero_goal/, ...');
  const own = suiteOfFolder(basename(abs));
  const candidates = own ? [abs] : readdirSync(abs).map((n) => join(abs, n)).filter((p) => statSync(p).isDirectory());
  const found: SuiteDir[] = [];
  for (const dir of candidates) {
    const suite = suiteOfFolder(basename(dir));
    if (suite) found.push({ suite, folder: basename(dir), dir, files: demoFiles(dir) });
  }
  const order = (s: SuiteDir) => SUITES.indexOf(s.suite) * 2 + (s.folder.endsWith('_no_noops') ? 1 : 0);
  found.sort((a, b) => order(a) - order(b));
  const listing = found.length ? `found: ${found.map((s) => s.folder).join(', ')}` : `expected sub-folders named ${SUITES.join(', ')} (optionally with _no_noops)`;
  if (!found.length) throw new DataError('no LIBERO suite folder found', { file: abs }, listing);
  if (!only || !only.length) return found;
  const missing = only.filter((name) => !found.some((s) => s.folder === name));
  if (missing.length) {
    const near = missing.map((m) => found.find((s) => s.suite === suiteOfFolder(m))?.folder).filter(Boolean);
    throw new DataError(
      `no suite folder named ${missing.join(', ')}`,
      { file: abs },
      `${listing}; suites are selected by exact folder name${near.length ? ` (did you mean ${near.join(', ')}?)` : ''}`,
    );
  }
  return found.filter((s) => only.includes(s.folder));
}
