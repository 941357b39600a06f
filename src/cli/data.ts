// `rdt-libero data <inspect|stats|synth>`: argument parsing only; the work is in src/data. Each subcommand has
// its own options and --help; errors are reported by main.ts.
import { dirname, join, resolve } from 'node:path';
import { LiberoDataset, type DatasetOptions, detectFormat } from '../data/dataset.js';
import { lerobotReport } from '../data/lerobot/report.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { SUITES } from '../data/discover.js';
import { computeStats, loadOrComputeStats, magnitudeReport } from '../data/stats.js';
import { writeFileAtomic } from '../util/atomic.js';
import { writeSyntheticSuite } from '../data/synthetic.js';
import type { Alignment } from '../data/step_index.js';
import { sameInstruction } from '../data/hdf5/libero_file.js';
import { UsageError } from '../util/errors.js';
import { didYouMean } from '../util/did-you-mean.js';
import { helpPointer, oneOf, parseCommandArgs, positiveInt, type ArgValues } from './args.js';

/** The statistics cache folder `data stats` uses by default, in the folder of its --out file. */
const STATS_CACHE_NAME = '.rdt-stats-cache';

const DATASET_OPTIONS_HELP = `options:
  --format F              auto (default: a folder with meta/info.json, or sub-folders with one, is LeRobot), hdf5, lerobot
  --suites a,b            suites to use (default: every one found): ${SUITES.join(', ')} (a _no_noops folder by its name);
                          for LeRobot, dataset folder names under <root>
  --encoding NAME         action encoding: ${Object.keys(ENCODINGS).join(', ')} (default eef_target_pose)
  --joints                also fill the 7 joint angles of the state
  --instructions SRC      filename (default, the evaluation prompt) or problem_info
  --align MODE            auto (default), stored, realign
  --keep-leading-idle     keep the no-op steps at the start of demos
  --drop-noops            drop every no-op step
`;

const INSPECT_USAGE = `usage: rdt-libero data inspect <root> [options]

Lists suites, tasks, demos, lengths, instructions, magnitudes and every problem found under <root>
(exit code 1 when there are problems).

${DATASET_OPTIONS_HELP}`;

const STATS_USAGE = `usage: rdt-libero data stats <root> [options] [--out dataset_stat.json] [--cache DIR]

Computes the dataset statistics (official dataset_stat.json layout) over <root> and writes them to --out
(default dataset_stat.json), reusing the cache folder --cache when it holds them. By default the cache is
${STATS_CACHE_NAME}/ in the folder of --out (beside the statistics it produced), not the current folder.

${DATASET_OPTIONS_HELP}  --out FILE              where the statistics go (default dataset_stat.json)
  --cache DIR             statistics cache (default: ${STATS_CACHE_NAME} beside --out)
`;

const SYNTH_USAGE = `usage: rdt-libero data synth <out> [options]

Writes a SYNTHETIC LIBERO-format suite (HDF5 files shaped like the released ones) under <out>.

options:
  --suite NAME            ${SUITES.join(', ')} (default libero_goal)
  --tasks N               tasks, one file each (default 2)
  --demos N               demos per task (default 3)
  --len N                 mean demo length in steps (default 60)
  --layout L              original (default) or regenerated
  --size N                image height = width (default 128 original, 256 regenerated)
  --seed N                random seed (default 0)
`;

export const DATA_USAGE = `usage: rdt-libero data <inspect|stats|synth> ... (rdt-libero data <subcommand> --help for its options)
  rdt-libero data inspect <root> [options]   suites, tasks, demos, lengths, instructions, magnitudes, problems
  rdt-libero data stats <root> [options] [--out dataset_stat.json] [--cache DIR (default: ${STATS_CACHE_NAME} beside --out)]
  rdt-libero data synth <out> [--suite libero_goal] [--tasks 2] [--demos 3] [--len 60] [--layout original|regenerated] [--size N] [--seed 0]

${DATASET_OPTIONS_HELP}`;

const DATASET_FLAGS = {
  format: { type: 'string' }, suites: { type: 'string' }, encoding: { type: 'string' }, joints: { type: 'boolean' }, instructions: { type: 'string' },
  align: { type: 'string' }, 'keep-leading-idle': { type: 'boolean' }, 'drop-noops': { type: 'boolean' },
} as const;

const SPECS = {
  inspect: { command: 'data inspect', usage: INSPECT_USAGE, positionals: ['<root>'], options: DATASET_FLAGS },
  stats: {
    command: 'data stats', usage: STATS_USAGE, positionals: ['<root>'],
    options: { ...DATASET_FLAGS, out: { type: 'string', default: 'dataset_stat.json' }, cache: { type: 'string' } },
  },
  synth: {
    command: 'data synth', usage: SYNTH_USAGE, positionals: ['<out>'],
    options: {
      suite: { type: 'string', default: 'libero_goal' }, tasks: { type: 'string', default: '2' }, demos: { type: 'string', default: '3' },
      len: { type: 'string', default: '60' }, layout: { type: 'string', default: 'original' }, size: { type: 'string' }, seed: { type: 'string', default: '0' },
    },
  },
} as const;

type DatasetFlags = ArgValues<typeof DATASET_FLAGS>;

function datasetOptions(root: string, f: DatasetFlags, strict: boolean, command: string): DatasetOptions {
  const suites = f.suites?.split(',').map((s) => s.trim()).filter(Boolean);
  const format = oneOf('format', f.format ?? 'auto', ['auto', 'hdf5', 'lerobot'] as const, command);
  const resolved = format === 'auto' ? detectFormat(root) : format;
  if (resolved === 'hdf5') for (const s of suites ?? []) oneOf('suites', s.replace(/_no_noops$/, ''), SUITES, command);
  return {
    root,
    format,
    strict,
    suites,
    instructionSource: oneOf('instructions', f.instructions ?? 'filename', ['filename', 'problem_info'] as const, command),
    index: {
      ...(f.align !== undefined ? { align: oneOf<Alignment>('align', f.align, ['auto', 'stored', 'realign'], command) } : {}),
      skipLeadingIdle: !f['keep-leading-idle'],
      dropNoops: f['drop-noops'],
    },
    adapter: { ...(f.encoding !== undefined ? { encoding: oneOf('encoding', f.encoding, Object.keys(ENCODINGS), command) } : {}), useJoints: f.joints },
  };
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3));

async function inspect(root: string, f: DatasetFlags): Promise<number> {
  const ds = await LiberoDataset.open(datasetOptions(root, f, false, SPECS.inspect.command));
  const w = (s: string) => process.stdout.write(s + '\n');
  w(`dataset root ${resolve(root)} (${ds.format})`);
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
      w(`    ${file.format === 'lerobot' ? 'LeRobot episodes, observation before action' : file.layout}, ${file.height}x${file.width}, ${file.demos.length} demos, ${stats}`);
      w(`    instruction: "${ds.instructions[fi]}"`);
      if (file.layout === 'original') {
        try {
          const bddl = file.instruction('problem_info');
          // Case, spacing and a final period do not count: the released BDDL text is capitalised, the file name is not.
          if (!sameInstruction(bddl, file.instruction('filename'))) w(`    problem_info:  "${bddl}" (differs; evaluation prompts use the file name)`);
        } catch {
          /* reported as a problem when requested */
        }
      }
    }
    if (files.some((x) => x.file.layout === 'original'))
      notes.push(`${ds.suiteFolders[si]}: original layout stores each observation after its action; align=${ds.options.index.align} ${ds.options.index.align === 'stored' ? 'keeps that pairing' : 'pairs each action with the observation before it'}`);
  });
  // LeRobot: what the folder is, how it maps, its own statistics against ours, and LeRobot's timestamp rule on
  // every video frame the index uses (exact packet times, tolerance_s).
  for (const lr of ds.lerobot) {
    const rep = await lerobotReport(ds, lr);
    w('');
    for (const line of rep.lines) w(line);
    notes.push(...rep.warnings);
    ds.problems.push(...rep.problems);
  }
  notes.push(...ds.notes);
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

async function stats(root: string, f: ArgValues<typeof SPECS.stats.options>): Promise<number> {
  const ds = await LiberoDataset.open(datasetOptions(root, f, true, SPECS.stats.command));
  const { out } = f;
  const cache = f.cache ?? join(dirname(out), STATS_CACHE_NAME);
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

async function synth(out: string, f: ArgValues<typeof SPECS.synth.options>): Promise<number> {
  const cmd = SPECS.synth.command;
  const int = (k: 'tasks' | 'demos' | 'len' | 'size') => positiveInt(k, f[k]!, cmd);
  if (!/^\d+$/.test(f.seed)) throw new UsageError(`--seed must be a non-negative integer, got '${f.seed}'; ${helpPointer(cmd)}`);
  const files = await writeSyntheticSuite({
    root: out, suite: oneOf('suite', f.suite, SUITES, cmd), layout: oneOf('layout', f.layout, ['original', 'regenerated'] as const, cmd),
    tasks: int('tasks'), demos: int('demos'), meanLength: int('len'), seed: Number(f.seed),
    ...(f.size !== undefined ? { size: int('size') } : {}),
  });
  process.stdout.write(`wrote ${files.length} files:\n${files.map((x) => `  ${x}`).join('\n')}\n`);
  return 0;
}

export async function data(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    if (sub === undefined) throw new UsageError(`give a subcommand: ${Object.keys(SPECS).join(', ')}; rdt-libero data --help lists them`);
    process.stdout.write(DATA_USAGE);
    return 0;
  }
  if (!(sub in SPECS)) {
    const near = didYouMean(sub, Object.keys(SPECS));
    throw new UsageError(`unknown subcommand '${sub}'${near ? ` (did you mean '${near}'?)` : ''}: use ${Object.keys(SPECS).join(', ')}; rdt-libero data --help lists them`);
  }
  if (sub === 'synth') {
    const p = parseCommandArgs(SPECS.synth, rest);
    return p ? synth(p.positionals[0], p.values) : 0;
  }
  if (sub === 'stats') {
    const p = parseCommandArgs(SPECS.stats, rest);
    return p ? stats(p.positionals[0], p.values) : 0;
  }
  const p = parseCommandArgs(SPECS.inspect, rest);
  return p ? inspect(p.positionals[0], p.values) : 0;
}
