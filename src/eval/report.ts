// Reports from episode records: per-task CSV, summary JSON and a Markdown table per suite and averaged, every
// rate with its Wilson score 95% interval (a binomial interval that stays inside [0, 1] and is sane at 0/n and n/n).
// A robustness run's perturbed episodes (records with `perturbation`) stay out of those standard numbers: they get
// their own table (per condition, and per task beside the standard rate, with the relative drop), robustness.csv,
// and summary.md leads with it.
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
  /** Present when the records hold perturbed episodes: standard vs each perturbation set. */
  robustness?: Robustness;
}

export interface Condition extends Tally {
  /** 'standard' or the perturbation set's name. */
  condition: string;
  /** The set's dimensions ('+'-joined) and levels ('-' where a dimension has none, e.g. language). */
  dimension: string;
  level: string;
  /** (standard rate - this rate) / standard rate over the same tasks; null when the standard rate is 0 (or for standard). */
  relative_drop: number | null;
}

export interface Robustness {
  /** Pooled over every suite and task: standard first, then each set. */
  conditions: Condition[];
  tasks: { suite: string; task: number; task_name: string; conditions: Condition[] }[];
}

const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];

export function summarize(all: readonly EpisodeRecord[]): Summary {
  const records = all.filter((r) => !r.perturbation);
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
    model_calls: all.reduce((s, r) => s + r.model_calls, 0),
    wall_s: all.reduce((s, r) => s + r.wall_s, 0),
    ...(all.length > records.length ? { robustness: robustness(all) } : {}),
  };
}

const STANDARD = 'standard';

function robustness(all: readonly EpisodeRecord[]): Robustness {
  const cond = (r: EpisodeRecord) => r.perturbation?.set ?? STANDARD;
  const names = [STANDARD, ...uniq(all.filter((r) => r.perturbation).map(cond)).sort()];
  const specsOf = new Map(all.filter((r) => r.perturbation).map((r) => [r.perturbation!.set, r.perturbation!.specs as { dim: string; level?: number; kind?: string; mode?: string }[]]));
  const conditionOf = (name: string, rs: readonly EpisodeRecord[], std: Tally | null): Condition => {
    const t = tally(rs);
    const specs = specsOf.get(name) ?? [];
    return {
      condition: name, ...t,
      dimension: name === STANDARD ? '-' : specs.map((x) => x.dim + (x.kind ? `/${x.kind}` : x.mode ? `/${x.mode}` : '')).join('+'),
      level: name === STANDARD ? '-' : specs.map((x) => (x.level === undefined ? '-' : String(x.level))).join('+'),
      relative_drop: std && name !== STANDARD && std.rate > 0 ? (std.rate - t.rate) / std.rate : null,
    };
  };
  const row = (rs: readonly EpisodeRecord[]) => {
    const std = tally(rs.filter((r) => cond(r) === STANDARD));
    return names.map((n) => conditionOf(n, rs.filter((r) => cond(r) === n), std));
  };
  const keys = uniq(all.map((r) => `${r.suite}\u0000${r.task}`));
  const tasks = keys.map((k) => {
    const [suite, task] = k.split('\u0000');
    const rs = all.filter((r) => r.suite === suite && r.task === Number(task));
    return { suite, task: Number(task), task_name: rs[0].task_name, conditions: row(rs) };
  }).sort((a, b) => a.suite.localeCompare(b.suite) || a.task - b.task);
  return { conditions: row(all), tasks };
}

export function robustnessCsv(r: Robustness): string {
  const head = 'suite,task,task_name,condition,dimension,level,episodes,successes,success_rate,ci95_low,ci95_high,relative_drop';
  const line = (suite: string, task: string, name: string, c: Condition) =>
    [suite, task, csvCell(name), csvCell(c.condition), csvCell(c.dimension), csvCell(c.level), c.episodes, c.successes, c.rate.toFixed(4), c.ci95[0].toFixed(4), c.ci95[1].toFixed(4),
      c.relative_drop === null ? '' : c.relative_drop.toFixed(4)].join(',');
  const rows = [...r.conditions.map((c) => line('all', 'all', 'all', c)), ...r.tasks.flatMap((t) => t.conditions.map((c) => line(t.suite, String(t.task), t.task_name, c)))];
  return [head, ...rows].join('\n') + '\n';
}

const drop = (c: Condition) => (c.condition === STANDARD ? '-' : c.relative_drop === null ? 'n/a (standard 0%)' : `${(100 * c.relative_drop).toFixed(1)}%`);

function robustnessMarkdown(r: Robustness): string[] {
  const out = ['## Robustness: standard vs perturbed', '', 'Each perturbed condition runs the same episodes (initial states, env and policy seeds) as the standard one; ' +
    'relative drop = (standard - perturbed) / standard.', '',
  '| condition | dimension | level | success % | 95% CI (Wilson) | successes / episodes | relative drop |', '|---|---|---|---|---|---|---|'];
  for (const c of r.conditions) out.push(`| ${c.condition} | ${c.dimension} | ${c.level} | ${pct(c.rate)} | ${ci(c)} | ${c.successes} / ${c.episodes} | ${drop(c)} |`);
  const names = r.conditions.map((c) => c.condition);
  out.push('', '### Per task (success %, 95% CI)', '', `| suite | task | ${names.join(' | ')} |`, `|---|---|${names.map(() => '---|').join('')}`);
  for (const t of r.tasks) out.push(`| ${t.suite} | ${t.task} | ${t.conditions.map((c) => `${pct(c.rate)} (${ci(c)}), ${c.successes}/${c.episodes}${c.condition === STANDARD ? '' : `, drop ${drop(c)}`}`).join(' | ')} |`);
  return out;
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
  const out = [`# LIBERO evaluation`, ''];
  if (s.robustness) out.push(...robustnessMarkdown(s.robustness), '', '## Standard evaluation', '');
  out.push(`policy: ${s.policy.join(', ')}; checkpoint step: ${s.checkpoint_step.map((x) => x ?? 'unknown').join(', ')}; ` +
    `protocol: ${s.protocol.join(', ')}; exec_horizon: ${s.exec_horizon.join(', ')}; env seeding: ${s.seeding.join(', ')}`, '',
  '| suite | success % | 95% CI (Wilson) | successes / episodes | crash retries |', '|---|---|---|---|---|');
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
  if (s.robustness) writeFileAtomic(join(dir, 'robustness.csv'), robustnessCsv(s.robustness));
  return s;
}
