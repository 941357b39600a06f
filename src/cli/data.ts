// `rdt-libero data <inspect|stats|synth>`: argument parsing only; the work is in src/data.
import { resolve } from 'node:path';
import { LiberoDataset, type DatasetOptions } from '../data/dataset.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { SUITES, type SuiteName } from '../data/discover.js';
import { computeStats, loadOrComputeStats, magnitudeReport } from '../data/stats.js';
import { writeFileAtomic } from '../util/atomic.js';
import { writeSyntheticSuite } from '../data/synthetic.js';
import type { Alignment } from '../data/step_index.js';

export const DATA_USAGE = `usage:
  rdt-libero data inspect <root> [options]   suites, tasks, demos, lengths, instructions, magnitudes, problems
  rdt-libero data stats <root> [options] [--out dataset_stat.json] [--cache .cache/data-stats]
  rdt-libero data synth <out> [--suite libero_goal] [--tasks 2] [--demos 3] [--len 60] [--layout original|regenerated] [--size N] [--seed 0]

options:
  --suites a,b            suites to use (default: every one found)
  --encoding NAME         action encoding: ${Object.keys(ENCODINGS).join(', ')} (default eef_target_pose)
  --joints                also fill the 7 joint angles of the state
  --instructions SRC      filename (default, the evaluation prompt) or problem_info
  --align MODE            auto (default), stored, realign
  --keep-leading-idle     keep the no-op steps at the start of demos
  --drop-noops            drop every no-op step
`;

function parse(args: string[]): { pos: string[]; flags: Record<string, string | true> } {
  const pos: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) {
      pos.push(a);
      continue;
    }
    const [k, v] = a.slice(2).split('=', 2);
    if (v !== undefined) flags[k] = v;
    else if (i + 1 < args.length && !args[i + 1].startsWith('--') && !['joints', 'keep-leading-idle', 'drop-noops', 'json'].includes(k)) flags[k] = args[++i];
    else flags[k] = true;
  }
  return { pos, flags };
}

function datasetOptions(root: string, f: Record<string, string | true>, strict: boolean): DatasetOptions {
  const str = (k: string) => (typeof f[k] === 'string' ? (f[k] as string) : undefined);
  return {
    root,
    strict,
    suites: str('suites')?.split(','),
    instructionSource: str('instructions') === 'problem_info' ? 'problem_info' : 'filename',
    index: {
      ...(str('align') ? { align: str('align') as Alignment } : {}),
      skipLeadingIdle: !f['keep-leading-idle'],
      dropNoops: !!f['drop-noops'],
    },
    adapter: { ...(str('encoding') ? { encoding: str('encoding')! } : {}), useJoints: !!f.joints },
  };
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3));

async function inspect(root: string, f: Record<string, string | true>): Promise<number> {
  const ds = await LiberoDataset.open(datasetOptions(root, f, false));
  const w = (s: string) => process.stdout.write(s + '\n');
  w(`dataset root ${resolve(root)}`);
  w(`encoding ${ds.cfg.encoding} (${ENCODINGS[ds.cfg.encoding].describe}); images ${ds.cfg.imageHeight}x${ds.cfg.imageWidth}, orientation ${ds.cfg.orientation}; ctrl_freq ${ds.cfg.ctrlFreq} Hz`);
  w(`index: align ${ds.options.index.align}, skipLeadingIdle ${ds.options.index.skipLeadingIdle}, dropNoops ${ds.options.index.dropNoops}`);
  const notes: string[] = [];
  ds.suites.forEach((suite, si) => {
    const files = ds.files.map((file, fi) => ({ file, fi })).filter((x) => ds.fileSuite[x.fi] === si);
    const eps = ds.index.episodes.filter((e) => e.suite === si);
    w(`\n${ds.suiteFolders[si]} (${suite}): ${files.length} tasks, ${eps.length} demos, ${eps.reduce((a, e) => a + e.obs.length, 0)} sample steps`);
    for (const { file, fi } of files) {
      const lens = file.demos.map((d) => d.length);
      const stats = lens.length ? `lengths ${Math.min(...lens)}/${(lens.reduce((a, b) => a + b, 0) / lens.length).toFixed(1)}/${Math.max(...lens)} (min/mean/max)` : 'no valid demos';
      w(`  ${file.taskName}`);
      w(`    ${file.layout}, ${file.height}x${file.width}, ${file.demos.length} demos, ${stats}`);
      w(`    instruction: "${ds.instructions[fi]}"`);
      if (file.layout === 'original') {
        try {
          const bddl = file.instruction('problem_info');
          if (bddl !== file.instruction('filename')) w(`    problem_info:  "${bddl}" (differs; evaluation prompts use the file name)`);
        } catch {
          /* reported as a problem when requested */
        }
      }
    }
    if (files.some((x) => x.file.layout === 'original'))
      notes.push(`${ds.suiteFolders[si]}: original layout stores each observation after its action; align=${ds.options.index.align} ${ds.options.index.align === 'stored' ? 'keeps that pairing' : 'pairs each action with the observation before it'}`);
  });
  let warnings: string[] = [];
  if (ds.size > 0) {
    const st = computeStats(ds).libero;
    const rep = magnitudeReport(st, ds.cfg.useJoints);
    w(`\nmagnitudes (RMS over all steps):`);
    for (const [what, rows] of [['state', rep.state], ['action', rep.action]] as const)
      for (const r of rows) w(`  ${what.padEnd(6)} ${r.group.padEnd(30)} ${fmt(r.rms).padStart(8)}   [${r.slots.map(([i, , v]) => `${i}:${fmt(v)}`).join(' ')}]`);
    warnings = rep.warnings;
  }
  w(`\n${notes.length + warnings.length} warnings${notes.length + warnings.length ? ':' : ''}`);
  for (const n of [...notes, ...warnings]) w(`  - ${n}`);
  w(`${ds.problems.length} problems${ds.problems.length ? ':' : ''}`);
  for (const p of ds.problems) w(`  - ${p.message}`);
  ds.close();
  return ds.problems.length ? 1 : 0;
}

async function stats(root: string, f: Record<string, string | true>): Promise<number> {
  const ds = await LiberoDataset.open(datasetOptions(root, f, true));
  const cache = typeof f.cache === 'string' ? f.cache : '.cache/data-stats';
  const out = typeof f.out === 'string' ? f.out : 'dataset_stat.json';
  const t0 = Date.now();
  const r = loadOrComputeStats(ds, cache);
  writeFileAtomic(out, JSON.stringify(r.stats, null, 1) + '\n');
  const all = r.stats.libero;
  process.stdout.write(`${r.cached ? 'cached' : 'computed'} statistics over ${all.num_steps} steps of ${all.num_episodes} demos (${ds.cfg.encoding}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  process.stdout.write(`wrote ${out} (entries: ${Object.keys(r.stats).join(', ')}); cache ${r.path}\n`);
  for (const wn of magnitudeReport(all, ds.cfg.useJoints).warnings) process.stdout.write(`warning: ${wn}\n`);
  ds.close();
  return 0;
}

async function synth(out: string, f: Record<string, string | true>): Promise<number> {
  const num = (k: string, d: number) => (typeof f[k] === 'string' ? Number(f[k]) : d);
  const suite = (typeof f.suite === 'string' ? f.suite : 'libero_goal') as SuiteName;
  if (!SUITES.includes(suite)) throw new Error(`unknown suite '${suite}' (known: ${SUITES.join(', ')})`);
  const layout = f.layout === 'regenerated' ? 'regenerated' : 'original';
  const files = await writeSyntheticSuite({
    root: out, suite, layout, tasks: num('tasks', 2), demos: num('demos', 3), meanLength: num('len', 60),
    seed: num('seed', 0), ...(typeof f.size === 'string' ? { size: Number(f.size) } : {}),
  });
  process.stdout.write(`wrote ${files.length} files:\n${files.map((x) => `  ${x}`).join('\n')}\n`);
  return 0;
}

export async function data(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { pos, flags } = parse(rest);
  const run = { inspect, stats, synth }[sub as 'inspect'];
  if (!run || pos.length !== 1) {
    process.stderr.write(DATA_USAGE);
    return 2;
  }
  return run(pos[0], flags);
}
