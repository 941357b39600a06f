// `eval merge`: the episode records of several eval folders (shards of one evaluation) -> one folder with
// episodes.jsonl and the reports.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { EvalError } from './errors.js';
import { markdown, writeReports } from './report.js';
import { mergeRecords, readAllRecords } from './results.js';

export function mergeInto(out: string, dirs: readonly string[]): { episodes: number; text: string } {
  for (const d of dirs) if (resolve(d) === resolve(out)) throw new EvalError(`eval merge: --out ${out} is also an input; write the merge to a new folder`);
  if (existsSync(join(out, 'episodes.jsonl'))) throw new EvalError(`eval merge: ${join(out, 'episodes.jsonl')} exists; merge into an empty folder`);
  const all = dirs.flatMap((d) => {
    const rs = readAllRecords(d);
    if (!rs.length) throw new EvalError(`eval merge: ${d} holds no episode records (episodes*.jsonl)`);
    return rs;
  });
  const merged = mergeRecords(all);
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, 'episodes.jsonl'), merged.map((r) => JSON.stringify(r) + '\n').join(''));
  const s = writeReports(out, merged);
  return { episodes: merged.length, text: markdown(s) };
}
