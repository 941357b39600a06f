// The evaluation run: N simulator workers (sidecar processes) pull episodes from one queue and share one
// batched policy (ChunkBatcher). Finished episodes are appended to the results file at once; a re-run skips every
// episode the folder already holds (in any of its results files, so a folder resumed with --shard after an
// unsharded run never counts an episode twice). An interrupted episode (a sidecar crash, the remote policy's
// connection re-opened mid-episode) is retried from its initial state (counted in the record); a simulator error in
// reset or step is recorded as a failed episode carrying the error (openpi's LIBERO client counts it as a failure;
// --stop-on-env-error stops instead); any other error (the policy's, a sidecar's reply, ffmpeg's) stops the run with
// that error, keeping the episodes already recorded, so nothing is ever counted as a silent failure. An abort
// signal (SIGINT/SIGTERM in the CLI) stops taking episodes, closes every sidecar and keeps what was recorded.
import { mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { EpisodeInterrupted, EvalError, EvalInterrupted, PolicyReconnected, SidecarCrash } from './errors.js';
import { ChunkBatcher } from './chunk_batcher.js';
import { type EvalIdentity, claimFolder } from './eval_config.js';
import { type EvalProtocol, SUITES } from './protocol.js';
import type { ChunkPolicy } from './chunk_policy.js';
import { type PerturbationSet, drawEpisode, setSlug } from './perturb.js';
import { type EpisodeRecord, RecordWriter, episodeKey, mergeRecords, readAllRecords, readRecords, resultsFile } from './results.js';
import { type Summary, markdown, writeReports } from './report.js';
import { type EpisodeSpec, runEpisode } from './rollout.js';
import type { Seeding } from './seeding.js';
import { SidecarWorker, type SidecarOptions, type TaskInfo } from './sidecar.js';
import { simVersionAdvice } from './sim_versions.js';
import { EpisodeVideo, type VideoMode, removeOrphanVideos } from './video.js';

export interface EvalOptions {
  out: string;
  suites: string[];
  /** Task indices to run (default: all of each suite). */
  tasks: number[] | null;
  episodesPerTask: number;
  protocol: EvalProtocol;
  /** Overrides the protocol's per-suite max steps (reported in every record). */
  maxSteps: number | null;
  /** Chunk steps executed before replanning; null: the policy's own (policy.json, the server's metadata). */
  execHorizon: number | null;
  temporalEnsemble: number | null;
  workers: number;
  /** Most observations in one model call (default: workers). */
  maxBatch: number;
  seed: number;
  /** The simulator's seeding (seeding.ts); default per-episode. */
  seeding?: Seeding;
  /** A simulator error stops the run instead of being recorded as a failed episode. */
  stopOnEnvError?: boolean;
  shard: { index: number; count: number } | null;
  videos: VideoMode;
  maxRetries: number;
  sidecar: SidecarOptions;
  log: (line: string) => void;
  /**
   * Robustness evaluation (perturb.ts): every episode runs once unperturbed and once per set, on the same initial
   * state and seeds; the reports put them side by side. Empty or absent: the standard evaluation only.
   */
  perturbations?: PerturbationSet[];
  /** Aborting it (SIGINT/SIGTERM) stops the run: no new episodes, every sidecar closed, EvalInterrupted thrown. */
  signal?: AbortSignal;
}

export interface EvalResult {
  ran: number;
  skipped: number;
  crashRetries: number;
  modelCalls: number;
  batchSizes: number[];
  wallS: number;
  summary: Summary;
  /** summary.md's text. */
  summaryText: string;
}

export function episodeList(o: Pick<EvalOptions, 'suites' | 'tasks' | 'episodesPerTask' | 'protocol' | 'seed' | 'shard' | 'perturbations'>): EpisodeSpec[] {
  const conditions: (string | undefined)[] = [undefined, ...(o.perturbations ?? []).map((p) => p.name)];
  const all: EpisodeSpec[] = [];
  for (const suite of o.suites) {
    const info = SUITES[suite];
    const tasks = o.tasks ?? Array.from({ length: info.tasks }, (_, i) => i);
    for (const task of tasks) {
      if (task >= info.tasks) throw new EvalError(`task ${task} does not exist in ${suite} (tasks 0..${info.tasks - 1})`);
      for (const perturbation of conditions)
        for (let episode = 0; episode < o.episodesPerTask; episode++)
          all.push({ suite, task, episode, init: o.protocol.initIndex(episode, 50), seed: o.seed, ...(perturbation ? { perturbation } : {}) });
    }
  }
  return o.shard ? all.filter((_, i) => i % o.shard!.count === o.shard!.index) : all;
}

export async function runEval(policy: ChunkPolicy, o: EvalOptions): Promise<EvalResult> {
  const t0 = performance.now();
  const seeding: Seeding = o.seeding ?? 'per-episode';
  const execHorizon = o.execHorizon ?? policy.execHorizon ?? null;
  if (execHorizon === null)
    throw new EvalError(`${policy.describe}: no exec horizon is recorded for this policy (its policy.json was written before rdt-libero recorded action.exec_horizon); pass --exec-horizon N`);
  if (o.temporalEnsemble === null && execHorizon > policy.chunkSize)
    throw new EvalError(`exec_horizon ${execHorizon} is longer than the policy's chunk (${policy.chunkSize} steps)`);
  if (o.signal?.aborted) throw new EvalInterrupted('the evaluation was interrupted before it started');
  mkdirSync(o.out, { recursive: true });
  const identity: EvalIdentity = {
    policy: policy.describe, checkpoint_step: policy.checkpointStep, protocol: o.protocol.name, exec_horizon: execHorizon,
    temporal_ensemble: o.temporalEnsemble, max_steps: o.maxSteps, seed: o.seed, seeding, backend: o.sidecar.backend,
    // Only when given, so folders of standard evaluations written before perturbations existed still resume.
    ...(o.perturbations?.length ? { perturbations: o.perturbations } : {}),
  };
  const sets = new Map((o.perturbations ?? []).map((p) => [p.name, p]));
  claimFolder(o.out, identity);
  const file = resultsFile(o.out, o.shard);
  removeOrphanVideos(join(o.out, 'videos'));
  readRecords(file, 'repair'); // this run appends here: a line a kill cut short goes
  // Every results file of the folder (another shard's may be being written now).
  const done = new Set(readAllRecords(o.out, 'skip').map(episodeKey));
  const todo = episodeList(o).filter((e) => !done.has(episodeKey(e)));
  const skipped = episodeList(o).length - todo.length;
  if (skipped) o.log(`eval: resuming ${o.out}: ${skipped} episode(s) already recorded, ${todo.length} to run`);
  const writer = new RecordWriter(file);
  // An env asking for a chunk may wait for others that need one within a model call's time, at most one chunk of
  // steps: once aligned, envs stay in step and share calls.
  const batcher = new ChunkBatcher(policy, o.maxBatch, o.temporalEnsemble === null ? execHorizon : 1);
  const total = todo.length;
  let finished = 0, successes = 0, crashRetries = 0, envErrors = 0;
  const progress = (rec: EpisodeRecord) => {
    finished++;
    if (rec.success) successes++;
    const el = (performance.now() - t0) / 1000;
    const retries = [rec.crash_retries ? `${rec.crash_retries} crash retr${rec.crash_retries > 1 ? 'ies' : 'y'}` : '', rec.reconnect_retries ? `${rec.reconnect_retries} reconnect retr${rec.reconnect_retries > 1 ? 'ies' : 'y'}` : ''].filter(Boolean);
    o.log(`[${finished}/${total}] ${rec.suite} task ${rec.task} init ${rec.init}${rec.perturbation ? ` [${rec.perturbation.set}]` : ''}: ${rec.success ? 'success' : rec.error ? 'failure (simulator error)' : 'failure'} after ${rec.steps} steps ` +
      `(${rec.wall_s.toFixed(1)} s${retries.length ? `, ${retries.join(', ')}` : ''}) | ${successes}/${finished} ` +
      `${((100 * successes) / finished).toFixed(1)}% | ${((finished / el) * 3600).toFixed(0)} ep/h, ETA ${Math.round((el / finished) * (total - finished))} s`);
  };
  let failure: unknown = null;
  const workers: (SidecarWorker | null)[] = [];
  let advised = false;

  const onAbort = () => {
    if (failure === null) failure = new EvalInterrupted(`the evaluation was interrupted; the ${finished + skipped} episode(s) recorded in ${o.out} are kept`);
    todo.length = 0;
    batcher.abort(failure);
    for (const s of workers) void s?.close(1000); // a sidecar hung mid-step is killed after 1 s
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });

  const workerLoop = async (w: number): Promise<void> => {
    // The worker's sidecar and the task it has open, with the resets made since it was opened (seeded) there.
    const cur: { sim: SidecarWorker | null; opened: { key: string; info: TaskInfo; resets: number } | null } = { sim: null, opened: null };
    const start = async () => {
      cur.sim = await SidecarWorker.start(o.sidecar);
      workers[w] = cur.sim;
      if (failure !== null) void cur.sim.close(1000);
      cur.opened = null;
      if (!advised) {
        advised = true;
        const advice = simVersionAdvice(cur.sim.versions);
        if (advice) o.log(`eval: ${advice}`);
      }
      return cur.sim;
    };
    try {
      while (todo.length && failure === null) {
        const spec = todo.shift()!;
        const maxSteps = o.maxSteps ?? o.protocol.maxSteps(spec.suite);
        let crashes = 0, reconnects = 0;
        for (;;) {
          let video: EpisodeVideo | null = null;
          const tStart = performance.now();
          try {
            const s: SidecarWorker = cur.sim ?? (await start());
            const key = `${spec.suite}/${spec.task}`;
            // per-task: episode k of a task must follow exactly k resets of a freshly seeded env (seeding.ts).
            if (cur.opened?.key !== key || (seeding === 'per-task' && cur.opened.resets > spec.episode)) {
              const info = await s.open({ suite: spec.suite, task: spec.task, resolution: policy.resolution, seed: spec.seed, horizon: maxSteps + o.protocol.waitSteps + 50 });
              cur.opened = { key, info, resets: 0 };
            }
            const opened = cur.opened;
            const info = opened.info;
            if (spec.init >= info.num_init_states) throw new EvalError(`${spec.suite} task ${spec.task} has ${info.num_init_states} initial states; episode ${spec.episode} needs index ${spec.init}`);
            if (seeding === 'per-task')
              for (; opened.resets < spec.episode; opened.resets++) await s.reset({ initIndex: o.protocol.initIndex(opened.resets, info.num_init_states) });
            if (o.videos !== 'none') video = new EpisodeVideo(join(o.out, 'videos', spec.suite, `.tmp-${process.pid}-${w}.mp4`), policy.resolution);
            const v = video;
            opened.resets++;
            const set = spec.perturbation ? sets.get(spec.perturbation)! : null;
            const pert = set ? drawEpisode(set, {
              seed: spec.seed, suite: spec.suite, task: spec.task, episode: spec.episode, language: info.language, taskName: info.task_name,
              suiteLanguages: info.suite_languages ?? [info.language],
            }) : null;
            const res = await runEpisode(s, batcher, w, policy, spec, {
              perturbation: pert,
              protocol: o.protocol, maxSteps, execHorizon, temporalEnsemble: o.temporalEnsemble, language: info.language,
              seedReset: seeding === 'per-episode', stopOnEnvError: o.stopOnEnvError ?? false,
            }, v ? (ob, step) => v.add(ob.obs.agentview_image as Uint8Array, ob.obs.robot0_eye_in_hand_image as Uint8Array, step === null ? `WAIT T ${ob.t}` : `STEP ${step}/${maxSteps}`) : undefined);
            if (failure !== null) throw failure; // interrupted: the episode did not run to its end
            const videoPath = video ? await finishVideo(video, o, spec, res.success) : null;
            const rec: EpisodeRecord = {
              suite: spec.suite, task: spec.task, task_name: info.task_name, language: info.language, episode: spec.episode, init: spec.init, seed: spec.seed,
              success: res.success, steps: res.steps, max_steps: maxSteps, env_steps: res.envSteps, wall_s: (performance.now() - tStart) / 1000,
              model_calls: res.modelCalls, replans: res.replans, crash_retries: crashes, reconnect_retries: reconnects, error: res.error, video: videoPath,
              checkpoint_step: policy.checkpointStep, policy: policy.describe, protocol: o.protocol.name, exec_horizon: execHorizon,
              temporal_ensemble: o.temporalEnsemble, seeding, inputs: policy.inputs ?? 'see the policy', worker: w, finished_at: new Date().toISOString(),
              ...(set && pert ? { perturbation: { set: set.name, specs: set.specs, seed: pert.seed, instruction: pert.instruction, applied: pert.applied, sim_applied: res.simApplied } } : {}),
            };
            writer.append(rec);
            if (res.error && envErrors++ === 0)
              o.log(`eval: ${spec.suite} task ${spec.task} init ${spec.init}: the simulator raised (${res.error}); the episode is recorded as a failure ` +
                'with the error, as openpi counts it (--stop-on-env-error stops instead; `rdt-libero doctor --sim` checks the install)');
            progress(rec);
            break;
          } catch (e) {
            video?.abort();
            if (!(e instanceof EpisodeInterrupted) || failure !== null) throw e;
            const isCrash = e instanceof SidecarCrash;
            if (crashes + reconnects >= o.maxRetries) throw e;
            if (isCrash) (crashes++, crashRetries++);
            else reconnects++;
            o.log(`eval: ${isCrash ? `worker ${w} crashed` : 'the connection to the remote policy dropped'} during ${spec.suite} task ${spec.task} init ${spec.init} (${e.message.split('\n')[0]}); ` +
              `${isCrash ? 'restarting it and ' : ''}retrying the episode from its initial state (retry ${crashes + reconnects} of ${o.maxRetries})`);
            if (isCrash) cur.sim = null;
          }
        }
      }
    } catch (e) {
      if (failure === null) failure = e;
    } finally {
      batcher.leave(w);
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.workers, total)) }, (_, w) => workerLoop(w)));
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    writer.close();
    await Promise.all(workers.map((s) => s?.close()));
  }
  if (failure !== null) {
    if (failure instanceof SidecarCrash || failure instanceof PolicyReconnected)
      throw new EvalError(`${failure.message}\n(the episode was retried ${o.maxRetries} time(s); --max-retries sets how often)`);
    throw failure;
  }
  // Again at the end: a killed run's ffmpeg outlives it, and on stdin EOF still writes an (empty) MP4, so under load
  // its .tmp- file can appear after the sweep at the start; by now it has long exited.
  removeOrphanVideos(join(o.out, 'videos'));
  const summary = writeReports(o.out, mergeRecords(readAllRecords(o.out, 'skip')));
  return { ran: finished, skipped, crashRetries, modelCalls: batcher.calls, batchSizes: batcher.batchSizes, wallS: (performance.now() - t0) / 1000, summary, summaryText: markdown(summary) };
}

/**
 * Close an episode's video: kept as videos/SUITE/taskTT_initII_epEE_OUTCOME.mp4 (a perturbed episode's
 * taskTT_initII_epEE_SET_OUTCOME.mp4, SET its set's name made file-safe) when --videos says so; its path relative to --out.
 */
async function finishVideo(video: EpisodeVideo, o: EvalOptions, spec: EpisodeSpec, success: boolean): Promise<string | null> {
  const keep = o.videos === 'all' || !success;
  const pad = (n: number) => String(n).padStart(2, '0');
  const name = `task${pad(spec.task)}_init${pad(spec.init)}_ep${pad(spec.episode)}_${spec.perturbation ? `${setSlug(spec.perturbation)}_` : ''}${success ? 'success' : 'failure'}.mp4`;
  const p = await video.finish(success, keep ? join(o.out, 'videos', spec.suite, name) : null);
  return p ? relative(o.out, p) : null;
}
