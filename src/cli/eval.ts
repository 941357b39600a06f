// `rdt-libero eval`: success rates in the LIBERO simulator (src/eval), `eval merge` for shards, `eval --watch`
// for checkpoints as a run writes them. Parses arguments and calls src/eval; no logic here.
import { UsageError } from '../util/errors.js';
import { PROTOCOLS, SUITES } from '../eval/protocol.js';
import { VIDEO_MODES, type VideoMode } from '../eval/video.js';
import type { EvalOptions } from '../eval/run.js';
import { helpPointer, oneOf, parseCommandArgs, positiveInt } from './args.js';

const USAGE = `usage: rdt-libero eval --policy DIR --suite SUITE[,SUITE...] --out DIR [options]
       rdt-libero eval --watch RUN_DIR --suite SUITE [options]
       rdt-libero eval merge --out DIR --in RESULTS_DIR [--in RESULTS_DIR ...]

Runs episodes in the LIBERO simulator and reports success rates with Wilson 95% intervals. The simulator runs
in sidecar processes (sidecar/rdt_sidecar.py) under the Python that has LIBERO installed (--sim-python).
Everything the policy was trained with (action encoding, image orientation and resolution, cameras, history,
statistics, encoders) is read from the policy folder's policy.json, never from flags.

policy and suites:
  --policy P           a policy folder (checkpoint-N/, checkpoint-N/ema/ for the EMA weights, final/, a
                       lora-merge output); ws://HOST:PORT, a policy server speaking openpi's websocket protocol
                       (rdt-libero serve, openpi's serve_policy.py): observations go in the format its metadata
                       names (openpi's LIBERO client format unless it says native), one connection per worker,
                       episode_start before each episode, actions executed as the server sends them; a dropped
                       connection is retried 3 times (counted), then the run stops keeping finished episodes;
                       scripted:reach | scripted:reach-unflipped (experts for --sim test only)
  --suite S[,S...]     ${Object.keys(SUITES).join(', ')}
  --tasks I[,I...]     task indices (default: every task of the suite)
  --out DIR            results: episodes.jsonl, tasks.csv, summary.json, summary.md, videos/, eval_config.json

protocol (defaults: openpi/OpenVLA-OFT, what published numbers use):
  --protocol P         openpi (default): 50 episodes per task on fixed initial states 0..49, 10 wait steps of
                       [0,0,0,0,0,0,-1], max steps ${Object.entries(SUITES).map(([s, v]) => `${s.replace('libero_', '')} ${v.maxSteps}`).join(', ')};
                       libero: the official lifelong eval: 20 episodes, init k mod 50, 5 wait steps of zeros, 600 steps
  --episodes N         episodes per task (default: the protocol's; fewer = a quick look, not a published number)
  --max-steps N        policy steps per episode instead of the protocol's (recorded in every result)
  --exec-horizon N     chunk steps executed before replanning (default 16; at most the policy's chunk)
  --temporal-ensemble K  ACT temporal ensembling instead: replan every step, average the overlapping chunks with
                       weights exp(-K i) (i = 0 oldest; ACT uses 0.01)
  --seed N             env seed set before every episode, and the sampler's noise seed (default 7, like openpi)

throughput and robustness:
  --workers N          simulator processes stepping in parallel; their chunk requests share model calls (default 1)
  --max-batch N        most observations per model call (default: --workers)
  --max-retries N      retries of an episode whose sidecar crashed, from its initial state (default 2)
  --shard I/N          run only episodes i with i mod N = I (I in 0..N-1); combine with eval merge
  --videos M           none, failures (default) or all: MP4 per episode in videos/SUITE/ (Debian ffmpeg)

simulator:
  --sim B              libero (default) or test (the sidecar's reach geometry, for CI and checks)
  --sim-python PATH    the Python with LIBERO, robosuite 1.4.x and MuJoCo (default: $PYTHON or python3)
  --sim-timeout S      seconds one simulator request may take before the sidecar is taken for hung, killed and
                       its episode retried like a crash (default 300)

model placement (rdt-libero policy folders):
  --device D           cpu (default), cuda, cuda:N
  --dtype D            float32 (default) or bfloat16
  --threads N          libtorch intra-op threads for the model (default: libtorch's choice); on a CPU shared with
                       the simulator workers, 1 is often fastest (bench:eval)

watching a training run:
  --watch RUN_DIR      evaluate each checkpoint-N/ (its ema/ when present) as it appears; results in
                       RUN_DIR/eval/checkpoint-N/, success rate vs step in RUN_DIR/eval/metrics.jsonl and
                       RUN_DIR/tensorboard/eval/ (default --episodes 5 in this mode)
  --poll S             seconds between looks for new checkpoints (default 60)
  --once               evaluate the checkpoints present now, then stop

Re-running the same command resumes: finished episodes (episodes.jsonl) are skipped. A folder holding results
of other settings (policy, protocol, exec horizon, ...) is refused.
`;

const MERGE_USAGE = `usage: rdt-libero eval merge --out DIR --in RESULTS_DIR [--in RESULTS_DIR ...]

Merges the episode records of several eval folders (e.g. the shards of one evaluation, run on several machines)
into DIR/episodes.jsonl and writes tasks.csv, summary.json and summary.md there. An episode recorded twice with
different outcomes is refused (the folders come from different evaluations).
`;

const OPTIONS = {
  policy: { type: 'string' }, suite: { type: 'string' }, tasks: { type: 'string' }, out: { type: 'string' },
  protocol: { type: 'string', default: 'openpi' }, episodes: { type: 'string' }, 'max-steps': { type: 'string' },
  'exec-horizon': { type: 'string', default: '16' }, 'temporal-ensemble': { type: 'string' }, seed: { type: 'string', default: '7' },
  workers: { type: 'string', default: '1' }, 'max-batch': { type: 'string' }, 'max-retries': { type: 'string', default: '2' },
  shard: { type: 'string' }, videos: { type: 'string', default: 'failures' }, sim: { type: 'string', default: 'libero' },
  'sim-python': { type: 'string' }, 'sim-timeout': { type: 'string', default: '300' }, device: { type: 'string', default: 'cpu' }, dtype: { type: 'string', default: 'float32' },
  threads: { type: 'string' }, watch: { type: 'string' }, poll: { type: 'string', default: '60' }, once: { type: 'boolean' },
} as const;

export async function evalCommand(args: string[]): Promise<number> {
  if (args[0] === 'merge') return merge(args.slice(1));
  const parsed = parseCommandArgs({ command: 'eval', usage: USAGE, options: OPTIONS, required: ['suite'] }, args);
  if (!parsed) return 0;
  const v = parsed.values;
  const C = 'eval';
  const nonNeg = (flag: string, s: string) => {
    if (!/^\d+$/.test(s)) throw new UsageError(`--${flag} must be a non-negative integer, got '${s}'; ${helpPointer(C)}`);
    return Number(s);
  };
  const suites = v.suite!.split(',').map((s) => oneOf('suite', s.trim(), Object.keys(SUITES), C));
  const tasks = v.tasks === undefined ? null : v.tasks.split(',').map((t) => nonNeg('tasks', t.trim()));
  if (tasks) for (const s of suites) for (const t of tasks) if (t >= SUITES[s].tasks) throw new UsageError(`--tasks ${t}: ${s} has tasks 0..${SUITES[s].tasks - 1}`);
  const protocol = PROTOCOLS[oneOf('protocol', v.protocol, ['openpi', 'libero'] as const, C)];
  const sim = oneOf('sim', v.sim, ['libero', 'test'] as const, C);
  const videos = oneOf('videos', v.videos, VIDEO_MODES, C) as VideoMode;
  const dtype = oneOf('dtype', v.dtype, ['float32', 'bfloat16'] as const, C);
  const workers = positiveInt('workers', v.workers, C);
  let shard: EvalOptions['shard'] = null;
  if (v.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(v.shard);
    if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new UsageError(`--shard must be I/N with 0 <= I < N (e.g. 0/4), got '${v.shard}'; ${helpPointer(C)}`);
    shard = { index: Number(m[1]), count: Number(m[2]) };
  }
  let temporalEnsemble: number | null = null;
  if (v['temporal-ensemble'] !== undefined) {
    temporalEnsemble = Number(v['temporal-ensemble']);
    if (!(temporalEnsemble >= 0) || !Number.isFinite(temporalEnsemble)) throw new UsageError(`--temporal-ensemble must be a number >= 0 (ACT uses 0.01), got '${v['temporal-ensemble']}'`);
    if (args.some((a) => a.startsWith('--exec-horizon'))) throw new UsageError('--exec-horizon and --temporal-ensemble exclude each other (temporal ensembling replans at every step)');
  }
  if (v.policy?.startsWith('scripted:') && sim !== 'test') throw new UsageError(`--policy ${v.policy} solves only the test back-end; add --sim test`);
  const opts: Omit<EvalOptions, 'out'> = {
    suites, tasks, protocol, temporalEnsemble, workers, shard, videos,
    episodesPerTask: v.episodes !== undefined ? positiveInt('episodes', v.episodes, C) : v.watch ? 5 : protocol.episodesPerTask,
    maxSteps: v['max-steps'] !== undefined ? positiveInt('max-steps', v['max-steps'], C) : null,
    execHorizon: positiveInt('exec-horizon', v['exec-horizon'], C),
    maxBatch: v['max-batch'] !== undefined ? positiveInt('max-batch', v['max-batch'], C) : workers,
    seed: nonNeg('seed', v.seed), maxRetries: nonNeg('max-retries', v['max-retries']),
    sidecar: { backend: sim, python: v['sim-python'], timeoutS: positiveInt('sim-timeout', v['sim-timeout'], C) },
    log: (line) => process.stderr.write(line + '\n'),
  };
  if (opts.protocol.name === 'openpi' && opts.episodesPerTask > 50) throw new UsageError(`--episodes ${opts.episodesPerTask}: the openpi protocol has 50 fixed initial states per task (use --protocol libero to cycle them)`);
  const policyOpts = { dtype, device: v.device, threads: v.threads === undefined ? undefined : positiveInt('threads', v.threads, C) };
  if (v.watch !== undefined) {
    if (v.policy !== undefined || v.out !== undefined) throw new UsageError('--watch RUN_DIR picks the policies (its checkpoints) and the output folder (RUN_DIR/eval/); drop --policy and --out');
    const { watchRun } = await import('../eval/watch.js');
    await watchRun(v.watch, { ...opts, policyOpts, pollS: positiveInt('poll', v.poll, C), once: v.once });
    return 0;
  }
  for (const f of ['once'] as const) if (v[f]) throw new UsageError(`--${f} applies only with --watch`);
  if (v.policy === undefined || v.out === undefined) throw new UsageError(`--${v.policy === undefined ? 'policy' : 'out'} is required (or --watch RUN_DIR); ${helpPointer(C)}`);
  if (/^wss?:\/\//.test(v.policy))
    for (const f of ['device', 'dtype', 'threads'])
      if (args.some((a) => a === `--${f}` || a.startsWith(`--${f}=`))) throw new UsageError(`--${f} places an rdt-libero policy folder's model; a remote policy (--policy ${v.policy}) runs where its server runs: drop --${f}`);
  const { openPolicy } = await import('../eval/policy_source.js');
  const { runEval } = await import('../eval/run.js');
  const policy = await openPolicy({ policy: v.policy, seed: opts.seed, ...policyOpts, log: opts.log });
  try {
    opts.log(`eval: ${policy.describe}; ${suites.join(', ')}; protocol ${protocol.name}, ${opts.episodesPerTask} episode(s) per task, ` +
      `${temporalEnsemble === null ? `exec_horizon ${opts.execHorizon}` : `temporal ensembling k=${temporalEnsemble}`}, ${workers} worker(s), sim ${sim} at ${policy.resolution}px`);
    const r = await runEval(policy, { ...opts, out: v.out });
    const mean = r.batchSizes.length ? r.batchSizes.reduce((a, b) => a + b, 0) / r.batchSizes.length : 0;
    process.stdout.write(r.summaryText);
    opts.log(`eval: ${r.ran} episode(s) run, ${r.skipped} resumed, ${r.crashRetries} crash retr${r.crashRetries === 1 ? 'y' : 'ies'}, ` +
      `${r.modelCalls} model call(s) (mean batch ${mean.toFixed(2)}), ${policy.reconnects !== undefined ? `${policy.reconnects} reconnect(s) to the remote policy, ` : ''}` +
      `${r.wallS.toFixed(1)} s -> ${v.out}/summary.md`);
  } finally {
    await policy.close();
  }
  return 0;
}

async function merge(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({ command: 'eval merge', usage: MERGE_USAGE, options: { out: { type: 'string' }, in: { type: 'string', multiple: true } }, required: ['out'] }, args);
  if (!parsed) return 0;
  if (!parsed.values.in?.length) throw new UsageError(`--in RESULTS_DIR is required (once per folder to merge); ${helpPointer('eval merge')}`);
  const { mergeInto } = await import('../eval/merge.js');
  const r = mergeInto(parsed.values.out!, parsed.values.in);
  process.stdout.write(r.text);
  return 0;
}
