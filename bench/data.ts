// `npm run bench:data`: samples per second for random full-step samples (state, 64-step chunk, 2 cameras x 2
// frames) on a generated suite of realistic size (10 tasks x 50 demos x ~150 steps, 128x128, ~7 GB, cached under
// .cache/bench-data), our worker-thread loader against h5py doing the same reads in one Python process; then the
// LeRobot video case: a v3.0 copy with AV1 videos at 256x256 (LeRobot's defaults; --lr-tasks N --lr-demos N,
// built by test/py/lerobot_from_hdf5.py), our loader (libav in the addon) against pyarrow + PyAV in as many
// processes as we have workers (bench/data_lerobot_pyav.py). --no-lerobot skips it, --lerobot-only skips the HDF5 case,
// --no-lr-video skips the video case. --lr-images adds the images-in-parquet case (two ~1.6 GB copies at the default
// size: see below).
// Options: --tasks N --demos N --len N --size N --seconds S --rounds N --workers N --batch N.
import { execFileSync } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataLoader } from '../src/data/loader.js';
import { LiberoDataset } from '../src/data/dataset.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { Rng } from '../src/data/rng.js';

function arg(name: string, d: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
}
const tasks = arg('tasks', 10), demos = arg('demos', 50), len = arg('len', 150), size = arg('size', 128);
const seconds = arg('seconds', 15), workers = arg('workers', 2), batch = arg('batch', 32);
const here = fileURLToPath(new URL('.', import.meta.url));
const repo = join(here, '..', '..');
const root = join(repo, '.cache', 'bench-data', `t${tasks}-d${demos}-l${len}-s${size}`);
const suiteDir = join(root, 'libero_goal');
const log = (s: string) => process.stdout.write(s + '\n');

const lerobotOnly = process.argv.includes('--lerobot-only');
interface Round {
  perSecond: number;
  cpuUsPerSample: number;
}

async function loaderRound(dl: DataLoader): Promise<Round> {
  const t0 = performance.now();
  const c0 = process.cpuUsage(); // all threads of this process: main + workers
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) n += (await dl.next()).size;
  const c = process.cpuUsage(c0);
  return { perSecond: n / ((performance.now() - t0) / 1000), cpuUsPerSample: (c.user + c.system) / n };
}

const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
const rounds = arg('rounds', 3);
if (!lerobotOnly) {
if (!existsSync(join(root, 'done'))) {
  log(`generating ${tasks} tasks x ${demos} demos x ~${len} steps at ${size}x${size} in ${root} ...`);
  const t0 = Date.now();
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks, demos, meanLength: len, size, seed: 2024 });
  writeFileSync(join(root, 'done'), '');
  log(`  generated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
// Warm the page cache for both readers alike (the files are read once end to end).
let bytes = 0;
const buf = Buffer.alloc(1 << 24);
for (const f of readdirSync(suiteDir)) {
  const fd = openSync(join(suiteDir, f), 'r');
  let n: number;
  while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) bytes += n;
  closeSync(fd);
}
const dsOpts = { root };
const ds = await LiberoDataset.open(dsOpts);
log(`suite: ${ds.files.length} files, ${ds.index.episodes.length} demos, ${ds.size} full-step samples, ${(bytes / 1e9).toFixed(2)} GB (page cache warmed)`);
log(`sample: state (128), chunk (64 x 128, ${ds.cfg.encoding}), 2 cameras x 2 frames ${size}x${size} uint8 (+ empty left-wrist slot)`);

// h5py: the same reads for random steps, drawn from the same index.
const rng = new Rng(99);
const samples = Array.from({ length: 200000 }, () => {
  const id = ds.id(rng.int(ds.size));
  return [id.file, id.demo, id.t, id.actionT];
});
const reqPath = join(root, 'h5py-request.json');
writeFileSync(reqPath, JSON.stringify({ samples, warmup: 200, seconds }));


function h5pyRound(): Round {
  const out = execFileSync(process.env.PYTHON || 'python3', [join(repo, 'bench', 'data_h5py.py'), reqPath], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const r = JSON.parse(out.trim().split('\n').pop()!) as { per_second: number; cpu_us_per_sample: number };
  return { perSecond: r.per_second, cpuUsPerSample: r.cpu_us_per_sample };
}
ds.close();


// The machine is shared, so the readers alternate in rounds and medians are compared; CPU time per sample (all
// threads) is reported too, since wall-clock rates on a loaded machine mostly measure the other tenants.
const mk = async (nw: number) => {
  const t0 = performance.now();
  const dl = await DataLoader.create({ dataset: dsOpts, batchSize: batch, workers: nw, prefetch: Math.max(2, 2 * nw), sampler: { seed: 1234 + nw } });
  log(`loader with ${nw} workers ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (open, index, per-demo caches)`);
  for (let i = 0; i < 3; i++) await dl.next();
  return dl;
};
const single = await mk(0);
const multi = await mk(workers);
const py: Round[] = [], one: Round[] = [], many: Round[] = [];
const f = (r: Round) => `${r.perSecond.toFixed(0)}/s (${r.cpuUsPerSample.toFixed(0)} us cpu)`;
for (let r = 0; r < rounds; r++) {
  py.push(h5pyRound());
  one.push(await loaderRound(single));
  many.push(await loaderRound(multi));
  log(`round ${r + 1}: h5py ${f(py[r])}, ours in-thread ${f(one[r])}, ours ${workers} workers ${f(many[r])}`);
}
await single.close();
await multi.close();
const P = median(py.map((r) => r.perSecond)), O = median(one.map((r) => r.perSecond)), M = median(many.map((r) => r.perSecond));
const Pc = median(py.map((r) => r.cpuUsPerSample)), Oc = median(one.map((r) => r.cpuUsPerSample)), Mc = median(many.map((r) => r.cpuUsPerSample));
log(`median of ${rounds} rounds of ${seconds} s, batch ${batch}:                 samples/s   cpu us/sample`);
log(`  h5py (1 process, reads only):                    ${P.toFixed(0).padStart(8)}   ${Pc.toFixed(0).padStart(8)}`);
log(`  ours in-thread (reads + full sample + batch):    ${O.toFixed(0).padStart(8)}   ${Oc.toFixed(0).padStart(8)}`);
log(`  ours ${`${workers} worker threads:`.padEnd(43)} ${M.toFixed(0).padStart(8)}   ${Mc.toFixed(0).padStart(8)}`);
log(`ratio ours(${workers} workers) / h5py = ${(M / P).toFixed(2)}x wall-clock   (in-thread ${(O / P).toFixed(2)}x; cpu per sample h5py/ours(${workers} workers) = ${(Pc / Mc).toFixed(2)}x; target >= 1)`);
const load = (await import('node:os')).loadavg()[0];
log(`machine: ${(await import('node:os')).cpus().length} cores, load average ${load.toFixed(1)}${load > (await import('node:os')).cpus().length ? ' (oversubscribed: wall-clock rates are shared with other processes)' : ''}`);
}

// ---- LeRobot cases ----
const lrTasks = arg('lr-tasks', 4), lrDemos = arg('lr-demos', 10);
const lrBase = join(repo, '.cache', 'bench-data', `lerobot-t${lrTasks}-d${lrDemos}-l${len}`);
/** The 256x256 HDF5 suite the LeRobot copies are written from. */
async function lerobotHdf5(): Promise<string> {
  const suite = join(lrBase, 'hdf5');
  if (!existsSync(join(lrBase, 'hdf5-done'))) {
    await writeSyntheticSuite({ root: suite, suite: 'libero_goal', layout: 'regenerated', tasks: lrTasks, demos: lrDemos, meanLength: len, size: 256, seed: 77 });
    writeFileSync(join(lrBase, 'hdf5-done'), '');
  }
  return join(suite, 'libero_goal_no_noops');
}

// ---- LeRobot video case ----
if (!process.argv.includes('--no-lerobot') && !process.argv.includes('--no-lr-video')) {
  const base = lrBase;
  const lrRoot = join(base, 'libero_v30_av1');
  if (!existsSync(join(base, 'done'))) {
    log(`generating a LeRobot v3.0 copy (AV1 videos, 256x256) of ${lrTasks} tasks x ${lrDemos} demos x ~${len} steps in ${base} ...`);
    const t0 = Date.now();
    const hdf5 = await lerobotHdf5();
    execFileSync(process.env.PYTHON || 'python3', [join(repo, 'test', 'py', 'lerobot_from_hdf5.py'), hdf5, lrRoot,
      '--version', 'v3.0', '--cameras', 'video', '--names', 'lerobot'], { stdio: ['ignore', 'ignore', 'pipe'] }); // stderr: SVT-AV1's banner per video; shown only on failure
    writeFileSync(join(base, 'done'), '');
    log(`  generated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const lds = await LiberoDataset.open({ root: lrRoot });
  log(`LeRobot copy: ${lds.index.episodes.length} episodes, ${lds.size} samples, 2 cameras x 2 frames 256x256 from AV1 MP4 (g=2, crf 30)`);
  const lrng = new Rng(7);
  const lsamples = Array.from({ length: 20000 }, () => {
    const id = lds.id(lrng.int(lds.size));
    return [Number(id.demo.slice(8)), id.t, id.actionT];
  });
  lds.close();
  // Two references: PyAV as LeRobot calls it (its default threads: libdav1d and swscale each use about 1.5 threads
  // per core), and PyAV with one thread per worker process, as our workers decode. On an idle machine the workers
  // fill the cores either way; on a shared one the extra threads mostly win a larger share of the CPU, so the
  // one-thread reference is the like-for-like comparison, and CPU time per sample is the load-independent one.
  const pyavRound = (oneThread: boolean): Round => {
    const lreq = join(base, `pyav-request-${oneThread ? 'one-thread' : 'default'}.json`);
    writeFileSync(lreq, JSON.stringify({ root: lrRoot, samples: lsamples, warmup: 16, seconds, workers, one_thread: oneThread }));
    const out = execFileSync(process.env.PYTHON || 'python3', [join(repo, 'bench', 'data_lerobot_pyav.py'), lreq], { encoding: 'utf8', maxBuffer: 1 << 24 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { per_second: number; cpu_us_per_sample: number };
    return { perSecond: r.per_second, cpuUsPerSample: r.cpu_us_per_sample };
  };
  const t0 = performance.now();
  const ldl = await DataLoader.create({ dataset: { root: lrRoot }, batchSize: batch, workers, prefetch: Math.max(2, 2 * workers), sampler: { seed: 4321 } });
  log(`loader with ${workers} workers ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (let i = 0; i < 2; i++) await ldl.next();
  const pd: Round[] = [], p1: Round[] = [], lo: Round[] = [];
  const fr = (r: Round) => `${r.perSecond.toFixed(1)}/s (${r.cpuUsPerSample.toFixed(0)} us cpu)`;
  const os = await import('node:os');
  for (let r = 0; r < rounds; r++) {
    pd.push(pyavRound(false));
    p1.push(pyavRound(true));
    lo.push(await loaderRound(ldl));
    log(`round ${r + 1}: pyarrow+PyAV ${workers} processes, default threads ${fr(pd[r])}, one thread each ${fr(p1[r])}; ours ${workers} workers ${fr(lo[r])}` +
      `   (load average ${os.loadavg()[0].toFixed(1)})`);
  }
  await ldl.close();
  const rate = (x: Round[]) => median(x.map((r) => r.perSecond)), cpu = (x: Round[]) => median(x.map((r) => r.cpuUsPerSample));
  log(`LeRobot video: median of ${rounds} rounds of ${seconds} s, batch ${batch}, ${workers} workers/processes each:      samples/s   cpu us/sample`);
  log(`  pyarrow+PyAV, LeRobot's default threads:             ${rate(pd).toFixed(1).padStart(8)}   ${cpu(pd).toFixed(0).padStart(8)}`);
  log(`  pyarrow+PyAV, one thread per process:                ${rate(p1).toFixed(1).padStart(8)}   ${cpu(p1).toFixed(0).padStart(8)}`);
  log(`  ours (libav in the addon, one thread per worker):    ${rate(lo).toFixed(1).padStart(8)}   ${cpu(lo).toFixed(0).padStart(8)}`);
  log(`ratio ours / pyarrow+PyAV = ${(rate(lo) / rate(p1)).toFixed(2)}x wall-clock like for like (one thread each), ${(rate(lo) / rate(pd)).toFixed(2)}x against ` +
    `PyAV's default threads; cpu per sample PyAV/ours = ${(cpu(p1) / cpu(lo)).toFixed(2)}x (one thread), ${(cpu(pd) / cpu(lo)).toFixed(2)}x (default) (target >= 1)`);
  log(`machine: ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)}`);
}

// ---- LeRobot images-in-parquet case (--lr-images) ----
// HuggingFaceVLA/libero's storage: PNG bytes in the v3.0 data files. Two layouts of the same rows: one row group per
// data file of ~100 MB (LeRobot's v2.1-to-v3.0 converter and its older aggregate path: pandas to_parquet of the
// concatenated episodes, scripts/convert_dataset_v21_to_v30.py concat_data_files at 7427f31; 2 episodes per file
// here, as its 100 MB file-size rule gives for ~40 MB episodes) and one row group per episode (the recording
// writer). PNGs carry noise so that they weigh what real renders weigh (~130 KB). Reference: LeRobot's way, the data
// converted once to memory-mapped Arrow and PNGs decoded by PIL (bench/data_lerobot_images.py).
if (!process.argv.includes('--no-lerobot') && process.argv.includes('--lr-images')) {
  const copies = { file: join(lrBase, 'libero_v30_png_rowgroup_file'), episode: join(lrBase, 'libero_v30_png_rowgroup_episode') };
  for (const [layout, root] of Object.entries(copies)) {
    if (existsSync(join(root, '..', `done-${layout}`))) continue;
    log(`generating a LeRobot v3.0 copy (PNG in parquet, one row group per ${layout}, 256x256) of ${lrTasks} tasks x ${lrDemos} demos in ${root} ...`);
    const t0 = Date.now();
    execFileSync(process.env.PYTHON || 'python3', [join(repo, 'test', 'py', 'lerobot_from_hdf5.py'), await lerobotHdf5(), root, '--version', 'v3.0',
      '--cameras', 'image', '--names', 'lerobot', '--episodes-per-file', '2', '--row-groups', layout, '--png-noise', '12'], { stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(join(root, '..', `done-${layout}`), '');
    log(`  generated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const lds = await LiberoDataset.open({ root: copies.file });
  const files = readdirSync(join(copies.file, 'data', 'chunk-000'));
  const bytes = files.reduce((a, f) => a + statSync(join(copies.file, 'data', 'chunk-000', f)).size, 0);
  log(`LeRobot PNG copy: ${lds.index.episodes.length} episodes, ${lds.size} samples in ${files.length} data files (${(bytes / 1e9).toFixed(2)} GB), 2 cameras x 2 frames 256x256 PNG`);
  const rng = new Rng(11);
  const samples = Array.from({ length: 20000 }, () => {
    const id = lds.id(rng.int(lds.size));
    return [Number(id.demo.slice(8)), id.t, id.actionT];
  });
  lds.close();
  const req = join(lrBase, 'png-request.json');
  writeFileSync(req, JSON.stringify({ root: copies.file, cache: join(lrBase, 'arrow-cache'), samples, warmup: 16, seconds, workers }));
  let convert = 0;
  const refRound = (): Round => {
    const out = execFileSync(process.env.PYTHON || 'python3', [join(repo, 'bench', 'data_lerobot_images.py'), req], { encoding: 'utf8', maxBuffer: 1 << 24 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { per_second: number; cpu_us_per_sample: number; convert_seconds: number };
    convert = Math.max(convert, r.convert_seconds);
    return { perSecond: r.per_second, cpuUsPerSample: r.cpu_us_per_sample };
  };
  const loaders = await Promise.all(Object.values(copies).map((root, k) =>
    DataLoader.create({ dataset: { root }, batchSize: batch, workers, prefetch: Math.max(2, 2 * workers), sampler: { seed: 99 + k } })));
  for (const dl of loaders) await dl.next();
  const ref: Round[] = [], perFile: Round[] = [], perEpisode: Round[] = [];
  const fr = (r: Round) => `${r.perSecond.toFixed(1)}/s (${r.cpuUsPerSample.toFixed(0)} us cpu)`;
  const os = await import('node:os');
  for (let r = 0; r < rounds; r++) {
    ref.push(refRound());
    perFile.push(await loaderRound(loaders[0]));
    perEpisode.push(await loaderRound(loaders[1]));
    log(`round ${r + 1}: pyarrow+PIL (Arrow cache) ${fr(ref[r])}; ours, one row group per file ${fr(perFile[r])}, per episode ${fr(perEpisode[r])}` +
      `   (load average ${os.loadavg()[0].toFixed(1)})`);
  }
  for (const dl of loaders) await dl.close();
  const rate = (x: Round[]) => median(x.map((r) => r.perSecond)), cpu = (x: Round[]) => median(x.map((r) => r.cpuUsPerSample));
  log(`LeRobot PNG in parquet: median of ${rounds} rounds of ${seconds} s, batch ${batch}, ${workers} workers/processes each:   samples/s   cpu us/sample`);
  log(`  pyarrow + PIL over memory-mapped Arrow (LeRobot's way):    ${rate(ref).toFixed(1).padStart(8)}   ${cpu(ref).toFixed(0).padStart(8)}   (one-time conversion ${convert.toFixed(0)} s)`);
  log(`  ours, one row group per data file (converter layout):     ${rate(perFile).toFixed(1).padStart(8)}   ${cpu(perFile).toFixed(0).padStart(8)}`);
  log(`  ours, one row group per episode (writer layout):          ${rate(perEpisode).toFixed(1).padStart(8)}   ${cpu(perEpisode).toFixed(0).padStart(8)}`);
  log(`ratio ours / reference = ${(rate(perFile) / rate(ref)).toFixed(2)}x (row group per file), ${(rate(perEpisode) / rate(ref)).toFixed(2)}x (per episode) wall-clock; ` +
    `cpu per sample reference/ours = ${(cpu(ref) / cpu(perFile)).toFixed(2)}x, ${(cpu(ref) / cpu(perEpisode)).toFixed(2)}x`);
  log(`machine: ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)}`);
}
