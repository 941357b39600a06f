// `eval merge`: the episode records of several eval folders (shards of one evaluation) -> one folder with
// episodes.jsonl, the reports and the shared eval_config.json. Folders whose settings (eval_config.json: policy,
// checkpoint, protocol, exec horizon, seeds, seeding, ...) differ are refused, naming the setting; so are records of
// another policy than their folder's settings name. Each episode is counted once.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { EvalError } from './errors.js';
import { EVAL_CONFIG, firstDifference, readEvalConfig } from './eval_config.js';
import { markdown, writeReports } from './report.js';
import { mergeRecords, readAllRecords } from './results.js';

export function mergeInto(out: string, dirs: readonly string[]): { episodes: number; text: string } {
  for (const d of dirs) if (resolve(d) === resolve(out)) throw new EvalError(`eval merge: --out ${out} is also an input; write the merge to a new folder`);
  if (existsSync(join(out, 'episodes.jsonl'))) throw new EvalError(`eval merge: ${join(out, 'episodes.jsonl')} exists; merge into an empty folder`);
  let first: { dir: string; config: Record<string, unknown> } | null = null;
  const all = dirs.flatMap((d) => {
    const config = readEvalConfig(d);
    if (!config) throw new EvalError(`eval merge: ${join(d, EVAL_CONFIG)} is missing; it records the settings of the evaluation in ${d}, without which its shards cannot be checked to belong together`);
    if (!first) first = { dir: d, config };
    const k = firstDifference(first.config, config);
    if (k !== null)
      throw new EvalError(`eval merge: ${join(d, EVAL_CONFIG)} has ${k} = ${JSON.stringify(config[k])}, ${join(first.dir, EVAL_CONFIG)} has ${JSON.stringify(first.config[k])}: ` +
        'these folders hold different evaluations; merge only shards of one evaluation (same policy and settings)');
    const rs = readAllRecords(d);
    if (!rs.length) throw new EvalError(`eval merge: ${d} holds no episode records (episodes*.jsonl)`);
    const stray = rs.find((r) => r.policy !== config.policy || r.checkpoint_step !== config.checkpoint_step);
    if (stray)
      throw new EvalError(`eval merge: ${d} holds a record of ${stray.suite} task ${stray.task} episode ${stray.episode} by policy ${stray.policy} (step ${stray.checkpoint_step}), ` +
        `but its ${EVAL_CONFIG} names ${String(config.policy)} (step ${String(config.checkpoint_step)}); the folder mixes evaluations`);
    return rs;
  });
  const merged = mergeRecords(all);
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, EVAL_CONFIG), JSON.stringify(first!.config, null, 2) + '\n');
  writeFileAtomic(join(out, 'episodes.jsonl'), merged.map((r) => JSON.stringify(r) + '\n').join(''));
  const s = writeReports(out, merged);
  return { episodes: merged.length, text: markdown(s) };
}
