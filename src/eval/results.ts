// Per-episode results that survive anything: one JSON line per finished episode, appended and fsynced before
// the next episode is counted, so a run killed at any moment keeps every finished episode and re-running the
// same command skips them. Shards write their own file; `eval merge` reads them all.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { EvalError } from './errors.js';

export interface EpisodeRecord {
  suite: string;
  task: number;
  task_name: string;
  language: string;
  episode: number;
  init: number;
  seed: number;
  success: boolean;
  /** Policy steps executed (wait steps excluded). */
  steps: number;
  max_steps: number;
  env_steps: number;
  wall_s: number;
  model_calls: number;
  replans: number[];
  /** Sidecar crashes this episode survived (each one restarted the worker and the episode). */
  crash_retries: number;
  /** Times the remote policy's connection was re-opened mid-episode (each one restarted the episode). */
  reconnect_retries: number;
  /** The simulator error that ended the episode (recorded as a failure, as openpi counts it), or null. */
  error: string | null;
  video: string | null;
  checkpoint_step: number | null;
  policy: string;
  protocol: string;
  exec_horizon: number;
  temporal_ensemble: number | null;
  /** seeding.ts: 'per-episode' (rdt-libero's) or 'per-task' (openpi's order). */
  seeding: string;
  /** Which inputs the policy saw (history frames and their spacing, request format). */
  inputs: string;
  worker: number;
  finished_at: string;
  /**
   * A perturbed episode's perturbation (perturb.ts): its set's name and specs, the per-episode seed, the instruction
   * the policy got, every value drawn, and what the simulator reported applying. Absent: a standard episode.
   */
  perturbation?: { set: string; specs: unknown[]; seed: number; instruction: string; applied: Record<string, unknown>; sim_applied: Record<string, unknown> | null };
}

/** One episode's identity; a perturbed episode's adds its set's name (records carry it as perturbation.set, specs as perturbation). */
export const episodeKey = (r: { suite: string; task: number; init: number; seed: number; episode: number; perturbation?: string | { set: string } }): string => {
  const p = typeof r.perturbation === 'string' ? r.perturbation : r.perturbation?.set;
  return `${r.suite}/${r.task}/${r.episode}/${r.init}/${r.seed}${p ? `/${p}` : ''}`;
};

export function resultsFile(out: string, shard: { index: number; count: number } | null): string {
  return join(out, shard ? `episodes.shard-${shard.index}-of-${shard.count}.jsonl` : 'episodes.jsonl');
}

/**
 * The records of one results file. A last line cut short by a kill (no newline, not JSON) is an error, or with
 * 'repair' removed from the file (its writer is about to append: appending continues cleanly), or with 'skip'
 * ignored (another process may be appending to that file now); a damaged line elsewhere is an error naming it.
 */
export function readRecords(file: string, cutLast: boolean | 'repair' | 'skip' = false): EpisodeRecord[] {
  const repair = cutLast === true || cutLast === 'repair';
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const out: EpisodeRecord[] = [];
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const last = i === lines.length - 1;
    if (line.trim()) {
      try {
        out.push(JSON.parse(line) as EpisodeRecord);
      } catch {
        if (last && repair) {
          truncateSync(file, offset);
          break;
        }
        if (last && cutLast === 'skip') break;
        throw new EvalError(`${file}: line ${i + 1} is not a JSON episode record${last ? ' (cut short; re-run the eval to repair it)' : ''}; remove the line to re-run that episode`);
      }
    }
    offset += Buffer.byteLength(line) + 1;
  }
  return out;
}

/** Every record under `dir` (episodes.jsonl and shard files); 'skip': tolerate last lines being written now. */
export function readAllRecords(dir: string, cutLast: false | 'skip' = false): EpisodeRecord[] {
  if (!existsSync(dir)) throw new EvalError(`results folder ${dir} does not exist`);
  const files = readdirSync(dir).filter((f) => /^episodes(\.shard-\d+-of-\d+)?\.jsonl$/.test(f)).sort();
  return files.flatMap((f) => readRecords(join(dir, f), cutLast));
}

/** Appends records, each fsynced before append() returns. */
export class RecordWriter {
  private fd: number;
  constructor(readonly file: string) {
    this.fd = openSync(file, 'a');
  }
  append(r: EpisodeRecord): void {
    const buf = Buffer.from(JSON.stringify(r) + '\n');
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    fsyncSync(this.fd);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Records merged by episode, each episode once (a folder resumed with --shard after an unsharded run, or two
 * merged folders, may hold an episode twice); two that disagree on the outcome of one episode are an error naming it.
 */
export function mergeRecords(records: readonly EpisodeRecord[]): EpisodeRecord[] {
  const byKey = new Map<string, EpisodeRecord>();
  for (const r of records) {
    const k = episodeKey(r);
    const prev = byKey.get(k);
    if (prev && (prev.success !== r.success || prev.steps !== r.steps || prev.policy !== r.policy || prev.checkpoint_step !== r.checkpoint_step))
      throw new EvalError(`episode ${k} appears twice with different results (success ${prev.success}/${r.success}, steps ${prev.steps}/${r.steps}, ` +
        `policy ${prev.policy} / ${r.policy}): these results come from different evaluations; merge only shards of one run`);
    if (!prev) byKey.set(k, r);
  }
  return [...byKey.values()].sort((a, b) => a.suite.localeCompare(b.suite) || a.task - b.task || (a.perturbation?.set ?? '').localeCompare(b.perturbation?.set ?? '') || a.episode - b.episode);
}
