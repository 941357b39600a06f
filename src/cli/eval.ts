// `rdt-libero eval`: success rates in the LIBERO simulator (src/eval), `eval merge` for shards, `eval --watch`
// for checkpoints as a run writes them. Parses arguments and calls src/eval; no logic here.
import { UsageError } from '../util/errors.js';
import { PROTOCOLS, SUITES } from '../eval/protocol.js';
import { VIDEO_MODES, type VideoMode } from '../eval/video.js';
import { SEEDINGS } from '../eval/seeding.js';
import { TEST_BACKEND_ONLY } from '../eval/scripted_policy.js';
import { perturbationSets } from '../eval/perturb.js';
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
                       (rdt-libero serve, openpi's serve_policy.py): only what openpi's client sends goes on the
                       wire (one observation per chunk, no control messages), in the format its metadata names
                       (openpi's LIBERO client request unless it says native), one connection per worker; a
                       connection dropped before an episode's first reply is retried 3 times (counted), later in an
                       episode the episode is retried from its initial state (counted, like a sidecar crash);
                       scripted:reach | scripted:reach-unflipped (experts for --sim test only); scripted:zero
                       (holds still, any back-end: checks a simulator install)
  --suite S[,S...]     ${Object.keys(SUITES).join(', ')}
  --tasks I[,I...]     task indices (default: every task of the suite)
  --out DIR            results: episodes.jsonl, tasks.csv, summary.json, summary.md, videos/, eval_config.json
                       (and robustness.csv with --perturb)

protocol (defaults: openpi/OpenVLA-OFT, what published numbers use):
  --protocol P         openpi (default): 50 episodes per task on fixed initial states 0..49, 10 wait steps of
                       [0,0,0,0,0,0,-1], max steps ${Object.entries(SUITES).map(([s, v]) => `${s.replace('libero_', '')} ${v.maxSteps}`).join(', ')};
                       libero: the official lifelong eval: 20 episodes, init k mod 50, 5 wait steps of zeros, 600 steps
  --episodes N         episodes per task (default: the protocol's; fewer = a quick look, not a published number)
  --max-steps N        policy steps per episode instead of the protocol's (recorded in every result)
  --exec-horizon N     chunk steps executed before replanning (at most the policy's chunk). Default: a policy
                       folder's policy.json action.exec_horizon; a remote policy's metadata exec_horizon, else 5
                       (openpi's LIBERO client's replan_steps)
  --temporal-ensemble K  ACT temporal ensembling instead: replan every step, average the overlapping chunks with
                       weights exp(-K i) (i = 0 oldest; ACT uses 0.01)
  --seed N             the env seed (default 7, like openpi), and the base of every model request's noise seed:
                       request i of an episode samples with a seed of (seed, suite, task, episode, i), so results
                       do not depend on --workers, batching, shards or a resume
  --seeding S          per-episode (default; rdt-libero's choice, not openpi's): numpy and the env are seeded
                       before every episode's reset, so every episode starts alike whatever ran before it;
                       per-task (openpi's order): seeded once when a task's env is made, each reset draws on
                       (examples/libero/main.py); episode k is preceded by k resets of the freshly seeded env
                       even after a resume or on several workers (the missing resets are replayed)

throughput and robustness:
  --workers N          simulator processes stepping in parallel; their chunk requests share model calls (default 1)
  --max-batch N        most observations per model call of a local policy (default: --workers)
  --max-retries N      retries of an episode interrupted by a sidecar crash or a mid-episode reconnect to the
                       remote policy, from its initial state (default 2)
  --stop-on-env-error  stop the run when the simulator raises in a reset or step; by default that episode is
                       recorded as a failure with the error (as openpi counts it) and the run goes on
  --shard I/N          run only episodes i with i mod N = I (I in 0..N-1); combine with eval merge
  --videos M           none, failures (default) or all: MP4 per episode in videos/SUITE/ (Debian ffmpeg)

robustness (README: robustness evaluation):
  --perturb SPEC       also run every episode under a perturbation, beside the standard run (repeatable; one set
                       each): camera:level=L, lighting:level=L, texture:level=L, layout:level=L, robot_init:level=L,
                       noise:kind=gaussian|blur|jpeg,level=L, language:mode=paraphrase[,file=F]|wrong; L = 0..3
                       or none|mild|moderate|severe (0 = none = identity); SPEC+SPEC combines dimensions in one
                       set; a .yaml file maps set names to specs. Seeded per episode; summary.md leads with
                       standard vs perturbed success

simulator:
  --sim B              libero (default) or test (the sidecar's reach geometry, for CI and checks)
  --sim-python PATH    the Python with LIBERO, robosuite 1.4.x and MuJoCo (default: $PYTHON or python3)
  --sim-timeout S      seconds one simulator request may take before the sidecar is taken for hung, killed and
                       its episode retried like a crash (default 300)
  --sim-start-timeout S  seconds a sidecar may take to start (the LIBERO, robosuite and MuJoCo imports, the render
                       back-end) before it is killed and the run stops with a setup error (default 300)

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
of other settings (policy, protocol, exec horizon, seeding, ...) is refused. SIGINT/SIGTERM (Ctrl-C) closes every
sidecar, keeps the finished episodes and prints the command that resumes.
`;

const MERGE_USAGE = `usage: rdt-libero eval merge --out DIR --in RESULTS_DIR [--in RESULTS_DIR ...]

Merges the episode records of several eval folders (e.g. the shards of one evaluation, run on several machines)
into DIR/episodes.jsonl and writes tasks.csv, summary.json and summary.md there. An episode recorded twice with
different outcomes is refused, and so are folders whose eval_config.json settings (policy, checkpoint, protocol,
exec horizon, seeds, seeding, ...) differ, naming the setting: they come from different evaluations.
`;

const OPTIONS = {
  policy: { type: 'string' }, suite: { type: 'string' }, tasks: { type: 'string' }, out: { type: 'string' },
  protocol: { type: 'string', default: 'openpi' }, episodes: { type: 'string' }, 'max-steps': { type: 'string' },
  'exec-horizon': { type: 'string' }, 'temporal-ensemble': { type: 'string' }, seed: { type: 'string', default: '7' },
  seeding: { type: 'string', default: 'per-episode' }, 'stop-on-env-error': { type: 'boolean' },
  workers: { type: 'string', default: '1' }, 'max-batch': { type: 'string' }, 'max-retries': { type: 'string', default: '2' },
  shard: { type: 'string' }, videos: { type: 'string', default: 'failures' }, sim: { type: 'string', default: 'libero' },
  'sim-python': { type: 'string' }, 'sim-timeout': { type: 'string', default: '300' }, 'sim-start-timeout': { type: 'string', default: '300' }, device: { type: 'string', default: 'cpu' }, dtype: { type: 'string', default: 'float32' },
  threads: { type: 'string' }, watch: { type: 'string' }, perturb: { type: 'string', multiple: true }, poll: { type: 'string', default: '60' }, once: { type: 'boolean' },
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
  if (v.policy?.startsWith('scripted:') && TEST_BACKEND_ONLY.includes(v.policy.slice('scripted:'.length)) && sim !== 'test')
    throw new UsageError(`--policy ${v.policy} solves only the test back-end; add --sim test`);
  const opts: Omit<EvalOptions, 'out'> = {
    suites, tasks, protocol, temporalEnsemble, workers, shard, videos,
    episodesPerTask: v.episodes !== undefined ? positiveInt('episodes', v.episodes, C) : v.watch ? 5 : protocol.episodesPerTask,
    maxSteps: v['max-steps'] !== undefined ? positiveInt('max-steps', v['max-steps'], C) : null,
    execHorizon: v['exec-horizon'] !== undefined ? positiveInt('exec-horizon', v['exec-horizon'], C) : null,
    seeding: oneOf('seeding', v.seeding, SEEDINGS, C), stopOnEnvError: v['stop-on-env-error'] ?? false,
    maxBatch: v['max-batch'] !== undefined ? positiveInt('max-batch', v['max-batch'], C) : workers,
    seed: nonNeg('seed', v.seed), maxRetries: nonNeg('max-retries', v['max-retries']),
    perturbations: perturbationSets(v.perturb ?? []),
    sidecar: { backend: sim, python: v['sim-python'], timeoutS: positiveInt('sim-timeout', v['sim-timeout'], C), startTimeoutS: positiveInt('sim-start-timeout', v['sim-start-timeout'], C) },
    log: (line) => process.stderr.write(line + '\n'),
  };
  if (opts.protocol.name === 'openpi' && opts.episodesPerTask > 50) throw new UsageError(`--episodes ${opts.episodesPerTask}: the openpi protocol has 50 fixed initial states per task (use --protocol libero to cycle them)`);
  const policyOpts = { dtype, device: v.device, threads: v.threads === undefined ? undefined : positiveInt('threads', v.threads, C) };
  if (v.watch !== undefined) {
    if (v.policy !== undefined || v.out !== undefined) throw new UsageError('--watch RUN_DIR picks the policies (its checkpoints) and the output folder (RUN_DIR/eval/); drop --policy and --out');
    const { watchRun } = await import('../eval/watch.js');
    return untilInterrupted(args, v.watch, (signal) => watchRun(v.watch!, { ...opts, signal, policyOpts, pollS: positiveInt('poll', v.poll, C), once: v.once }));
  }
  for (const f of ['once'] as const) if (v[f]) throw new UsageError(`--${f} applies only with --watch`);
  if (v.policy === undefined || v.out === undefined) throw new UsageError(`--${v.policy === undefined ? 'policy' : 'out'} is required (or --watch RUN_DIR); ${helpPointer(C)}`);
  if (/^wss?:\/\//.test(v.policy))
    for (const f of ['device', 'dtype', 'threads'])
      if (args.some((a) => a === `--${f}` || a.startsWith(`--${f}=`))) throw new UsageError(`--${f} places an rdt-libero policy folder's model; a remote policy (--policy ${v.policy}) runs where its server runs: drop --${f}`);
  if (/^wss?:\/\//.test(v.policy) && v['max-batch'] !== undefined)
    throw new UsageError(`--max-batch gathers observations into one local model call; a remote policy's requests go out at once, one per env, and its server batches them (rdt-libero serve --max-batch): drop --max-batch`);
  const { openPolicy } = await import('../eval/policy_source.js');
  const { runEval } = await import('../eval/run.js');
  const policy = await openPolicy({ policy: v.policy, ...policyOpts, log: opts.log });
  const out = v.out;
  return untilInterrupted(args, out, async (signal) => {
    try {
      const h = opts.execHorizon ?? policy.execHorizon;
      opts.log(`eval: ${policy.describe}; ${suites.join(', ')}; protocol ${protocol.name}, ${opts.episodesPerTask} episode(s) per task, ` +
        `${temporalEnsemble === null ? `exec_horizon ${h ?? '(none recorded)'}${opts.execHorizon === null ? ' (the policy\'s)' : ''}` : `temporal ensembling k=${temporalEnsemble}`}, ` +
        `${opts.seeding} seeding, ${workers} worker(s), sim ${sim} at ${policy.resolution}px`);
      const r = await runEval(policy, { ...opts, out, signal });
      const mean = r.batchSizes.length ? r.batchSizes.reduce((a, b) => a + b, 0) / r.batchSizes.length : 0;
      process.stdout.write(r.summaryText);
      opts.log(`eval: ${r.ran} episode(s) run, ${r.skipped} resumed, ${r.crashRetries} crash retr${r.crashRetries === 1 ? 'y' : 'ies'}, ` +
        `${r.modelCalls} model call(s) (mean batch ${mean.toFixed(2)}), ${policy.reconnects !== undefined ? `${policy.reconnects} reconnect(s) to the remote policy, ` : ''}` +
        `${r.wallS.toFixed(1)} s -> ${out}/summary.md`);
    } finally {
      await policy.close();
    }
  });
}

/**
 * Run `work` until it ends or SIGINT/SIGTERM arrives; then abort it (the evaluation closes every sidecar and keeps
 * the recorded episodes) and print the command that resumes. Exit code 130 (SIGINT) or 143 (SIGTERM). If the work
 * does not wind down within GRACE_MS (a model call or a remote request in flight), the process leaves anyway:
 * every finished episode is already on disk.
 */
async function untilInterrupted(args: string[], out: string, work: (signal: AbortSignal) => Promise<void>): Promise<number> {
  const GRACE_MS = 15_000;
  const ac = new AbortController();
  let got: NodeJS.Signals | null = null;
  const resume = () => `eval: interrupted by ${got}; the episodes recorded in ${out} are kept; resume with: rdt-libero eval ${args.map(shellQuote).join(' ')}`;
  const code = () => (got === 'SIGINT' ? 130 : 143);
  const onSignal = (s: NodeJS.Signals) => {
    if (got) return;
    got = s;
    process.stderr.write(`eval: ${s}: stopping (closing the simulators; finished episodes are kept)\n`);
    ac.abort();
    setTimeout(() => {
      process.stderr.write(resume() + '\n');
      process.exit(code());
    }, GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await work(ac.signal);
    return 0;
  } catch (e) {
    if (!got) throw e;
    process.stderr.write(resume() + '\n');
    return code();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const shellQuote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

async function merge(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({ command: 'eval merge', usage: MERGE_USAGE, options: { out: { type: 'string' }, in: { type: 'string', multiple: true } }, required: ['out'] }, args);
  if (!parsed) return 0;
  if (!parsed.values.in?.length) throw new UsageError(`--in RESULTS_DIR is required (once per folder to merge); ${helpPointer('eval merge')}`);
  const { mergeInto } = await import('../eval/merge.js');
  const r = mergeInto(parsed.values.out!, parsed.values.in);
  process.stdout.write(r.text);
  return 0;
}
