// Reports from episode records: per-task CSV, summary JSON and a Markdown table per suite and averaged, every
// rate with its Wilson score 95% interval (a binomial interval that stays inside [0, 1] and is sane at 0/n and n/n).
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { EpisodeRecord } from './results.js';

export const Z95 = 1.959963984540054;

/** Wilson score interval for k successes in n trials. */
export function wilson(k: number, n: number, z = Z95): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const z2 = z * z;
  const den = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / den;
  const half = (z / den) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, center - half), Math.min(1, center + half)];
}

export interface Tally {
  episodes: number;
  successes: number;
  rate: number;
  ci95: [number, number];
  mean_steps: number;
  crash_retries: number;
  /** Episodes retried after the remote policy's connection was re-opened mid-episode. */
  reconnect_retries: number;
  /** Failed episodes that a simulator error ended (counted in `episodes`, as openpi counts them). */
  env_errors: number;
}

function tally(rs: readonly EpisodeRecord[]): Tally {
  const k = rs.filter((r) => r.success).length;
  const n = rs.length;
  return {
    episodes: n, successes: k, rate: n ? k / n : 0, ci95: wilson(k, n),
    mean_steps: n ? rs.reduce((s, r) => s + r.steps, 0) / n : 0,
    crash_retries: rs.reduce((s, r) => s + r.crash_retries, 0),
    // ?? 0 / != null: records written before these fields existed.
    reconnect_retries: rs.reduce((s, r) => s + (r.reconnect_retries ?? 0), 0),
    env_errors: rs.filter((r) => r.error != null).length,
  };
}

export interface Summary {
  policy: string[];
  checkpoint_step: (number | null)[];
  protocol: string[];
  exec_horizon: number[];
  /** seeding.ts: per-episode (rdt-libero's) or per-task (openpi's order). */
  seeding: string[];
  suites: Record<string, Tally & { tasks: (Tally & { task: number; task_name: string; language: string })[] }>;
  /** Mean of the suite rates (how published tables average), with the pooled episodes' Wilson interval. */
  average: { rate: number; pooled: Tally };
  model_calls: number;
  wall_s: number;
}

const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];

export function summarize(records: readonly EpisodeRecord[]): Summary {
  const suites: Summary['suites'] = {};
  for (const suite of uniq(records.map((r) => r.suite)).sort()) {
    const rs = records.filter((r) => r.suite === suite);
    const tasks = uniq(rs.map((r) => r.task)).sort((a, b) => a - b).map((task) => {
      const t = rs.filter((r) => r.task === task);
      return { task, task_name: t[0].task_name, language: t[0].language, ...tally(t) };
    });
    suites[suite] = { ...tally(rs), tasks };
  }
  const rates = Object.values(suites).map((s) => s.rate);
  return {
    policy: uniq(records.map((r) => r.policy)),
    checkpoint_step: uniq(records.map((r) => r.checkpoint_step)),
    protocol: uniq(records.map((r) => r.protocol)),
    exec_horizon: uniq(records.map((r) => r.exec_horizon)),
    seeding: uniq(records.map((r) => r.seeding ?? 'per-episode')),
    suites,
    average: { rate: rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : 0, pooled: tally(records) },
    model_calls: records.reduce((s, r) => s + r.model_calls, 0),
    wall_s: records.reduce((s, r) => s + r.wall_s, 0),
  };
}

const pct = (x: number) => (100 * x).toFixed(1);
const ci = (t: Tally) => `${pct(t.ci95[0])}-${pct(t.ci95[1])}`;
const csvCell = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export function tasksCsv(s: Summary): string {
  const head = 'suite,task,task_name,episodes,successes,success_rate,ci95_low,ci95_high,mean_steps,crash_retries,reconnect_retries,env_errors';
  const rows = Object.entries(s.suites).flatMap(([suite, st]) => st.tasks.map((t) =>
    [suite, t.task, csvCell(t.task_name), t.episodes, t.successes, t.rate.toFixed(4), t.ci95[0].toFixed(4), t.ci95[1].toFixed(4), t.mean_steps.toFixed(1), t.crash_retries,
      t.reconnect_retries, t.env_errors].join(',')));
  return [head, ...rows].join('\n') + '\n';
}

export function markdown(s: Summary): string {
  const out = [`# LIBERO evaluation`, '', `policy: ${s.policy.join(', ')}; checkpoint step: ${s.checkpoint_step.map((x) => x ?? 'unknown').join(', ')}; ` +
    `protocol: ${s.protocol.join(', ')}; exec_horizon: ${s.exec_horizon.join(', ')}; env seeding: ${s.seeding.join(', ')}`, '',
  '| suite | success % | 95% CI (Wilson) | successes / episodes | crash retries |', '|---|---|---|---|---|'];
  for (const [suite, t] of Object.entries(s.suites)) out.push(`| ${suite} | ${pct(t.rate)} | ${ci(t)} | ${t.successes} / ${t.episodes} | ${t.crash_retries} |`);
  const p = s.average.pooled;
  out.push(`| **average** | ${pct(s.average.rate)} | ${ci(p)} (pooled) | ${p.successes} / ${p.episodes} | ${p.crash_retries} |`);
  if (p.env_errors) out.push('', `${p.env_errors} episode(s) ended by a simulator error, counted as failures (their 'error' in episodes.jsonl; --stop-on-env-error stops instead).`);
  if (p.reconnect_retries) out.push('', `${p.reconnect_retries} episode restart(s) after the remote policy's connection was re-opened mid-episode.`);
  for (const [suite, st] of Object.entries(s.suites)) {
    out.push('', `## ${suite}`, '', '| task | instruction | success % | 95% CI | successes / episodes | mean steps |', '|---|---|---|---|---|---|');
    for (const t of st.tasks) out.push(`| ${t.task} | ${t.language.replace(/\|/g, '\\|')} | ${pct(t.rate)} | ${ci(t)} | ${t.successes} / ${t.episodes} | ${t.mean_steps.toFixed(0)} |`);
  }
  return out.join('\n') + '\n';
}

/** tasks.csv, summary.json and summary.md in `dir`, each written atomically. */
export function writeReports(dir: string, records: readonly EpisodeRecord[]): Summary {
  const s = summarize(records);
  writeFileAtomic(join(dir, 'tasks.csv'), tasksCsv(s));
  writeFileAtomic(join(dir, 'summary.json'), JSON.stringify(s, null, 2) + '\n');
  writeFileAtomic(join(dir, 'summary.md'), markdown(s));
  return s;
}
