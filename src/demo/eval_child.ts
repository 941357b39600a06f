// One `rdt-libero eval` run as a child process, exactly the command a user would type (the demo prints it), with
// its progress forwarded a few lines at a time and its results read back from the files it writes.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Summary } from '../eval/report.js';
import { type EpisodeRecord, readRecords } from '../eval/results.js';
import { DemoError } from './errors.js';

export const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface EvalRun {
  args: string[];
  out: string;
  summary: Summary;
  records: EpisodeRecord[];
  wallS: number;
}

/** Run `rdt-libero eval ARGS` (ARGS must hold --out); progress lines go to `say`, prefixed, about five per run. */
export async function runEvalChild(args: string[], say: (line: string) => void, prefix: string): Promise<EvalRun> {
  const out = args[args.indexOf('--out') + 1];
  const t0 = performance.now();
  const child = spawn(process.execPath, [MAIN, 'eval', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const tail: string[] = [];
  let partial = '';
  child.stderr.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      const m = /^\[(\d+)\/(\d+)\]/.exec(line);
      // Episode lines: every fifth of the run, and the last; everything else (start line, errors) as it comes.
      if (m ? Number(m[1]) % Math.max(1, Math.ceil(Number(m[2]) / 5)) === 0 || m[1] === m[2] : !line.startsWith('eval: ')) say(`${prefix}${line}`);
    }
  });
  const code: number = await new Promise((res, rej) => {
    child.on('error', rej);
    child.on('exit', (c, sig) => res(c ?? (sig ? 128 : 1)));
  });
  if (code !== 0) throw new DemoError(`rdt-libero eval ${args.join(' ')} failed (exit ${code}):\n${tail.slice(-8).join('\n')}`);
  return {
    args, out, wallS: (performance.now() - t0) / 1000,
    summary: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary,
    records: readRecords(join(out, 'episodes.jsonl')),
  };
}
