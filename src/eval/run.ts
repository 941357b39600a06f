// The evaluation run: N simulator workers (sidecar processes) pull episodes from one queue and share one
// batched policy (ChunkBatcher). Finished episodes are appended to the results file at once; a re-run skips them.
// A sidecar crash restarts that worker and retries the episode from its initial state (counted in the record);
// any other error (the policy's, a sidecar's reply, ffmpeg's) stops the run with that error, keeping the
// episodes already recorded, so nothing is ever counted as a silent failure.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { EvalError, SidecarCrash } from './errors.js';
import { ChunkBatcher } from './batcher.js';
import { type EvalProtocol, SUITES } from './protocol.js';
import type { ChunkPolicy } from './policy_source.js';
import { type EpisodeRecord, RecordWriter, episodeKey, readAllRecords, readRecords, resultsFile } from './results.js';
import { type Summary, markdown, writeReports } from './report.js';
import { type EpisodeSpec, runEpisode } from './rollout.js';
import { SidecarWorker, type SidecarOptions, type TaskInfo } from './sidecar.js';
import { EpisodeVideo, type VideoMode, removeStaleTemporaries } from './video.js';

export interface EvalOptions {
  out: string;
  suites: string[];
  /** Task indices to run (default: all of each suite). */
  tasks: number[] | null;
  episodesPerTask: number;
  protocol: EvalProtocol;
  /** Overrides the protocol's per-suite max steps (reported in every record). */
  maxSteps: number | null;
  execHorizon: number;
  temporalEnsemble: number | null;
  workers: number;
  /** Most observations in one model call (default: workers). */
  maxBatch: number;
  seed: number;
  shard: { index: number; count: number } | null;
  videos: VideoMode;
  maxRetries: number;
  sidecar: SidecarOptions;
  log: (line: string) => void;
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

/** The settings that decide outcomes; a re-run into the same folder must have the same ones. */
function runIdentity(policy: ChunkPolicy, o: EvalOptions) {
  return {
    policy: policy.describe, checkpoint_step: policy.checkpointStep, protocol: o.protocol.name, exec_horizon: o.execHorizon,
    temporal_ensemble: o.temporalEnsemble, max_steps: o.maxSteps, seed: o.seed, backend: o.sidecar.backend,
  };
}

function checkIdentity(out: string, id: ReturnType<typeof runIdentity>): void {
  const file = join(out, 'eval_config.json');
  if (existsSync(file)) {
    const prev = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const [k, v] of Object.entries(id))
      if (JSON.stringify(prev[k]) !== JSON.stringify(v))
        throw new EvalError(`${file}: this folder holds an evaluation with ${k} = ${JSON.stringify(prev[k])}, this run has ${JSON.stringify(v)}; ` +
          'use another --out (results of different settings must not mix), or the same settings to resume');
  } else {
    writeFileAtomic(file, JSON.stringify(id, null, 2) + '\n');
  }
}

export function episodeList(o: Pick<EvalOptions, 'suites' | 'tasks' | 'episodesPerTask' | 'protocol' | 'seed' | 'shard'>): EpisodeSpec[] {
  const all: EpisodeSpec[] = [];
  for (const suite of o.suites) {
    const info = SUITES[suite];
    const tasks = o.tasks ?? Array.from({ length: info.tasks }, (_, i) => i);
    for (const task of tasks) {
      if (task >= info.tasks) throw new EvalError(`task ${task} does not exist in ${suite} (tasks 0..${info.tasks - 1})`);
      for (let episode = 0; episode < o.episodesPerTask; episode++)
        all.push({ suite, task, episode, init: o.protocol.initIndex(episode, 50), seed: o.seed });
    }
  }
  return o.shard ? all.filter((_, i) => i % o.shard!.count === o.shard!.index) : all;
}

export async function runEval(policy: ChunkPolicy, o: EvalOptions): Promise<EvalResult> {
  const t0 = performance.now();
  if (o.temporalEnsemble === null && o.execHorizon > policy.chunkSize)
    throw new EvalError(`exec_horizon ${o.execHorizon} is longer than the policy's chunk (${policy.chunkSize} steps)`);
  mkdirSync(o.out, { recursive: true });
  checkIdentity(o.out, runIdentity(policy, o));
  const file = resultsFile(o.out, o.shard);
  removeStaleTemporaries(join(o.out, 'videos'));
  const done = new Set(readRecords(file, true).map(episodeKey));
  const todo = episodeList(o).filter((e) => !done.has(episodeKey(e)));
  const skipped = done.size;
  if (skipped) o.log(`eval: resuming ${file}: ${skipped} episode(s) already recorded, ${todo.length} to run`);
  const writer = new RecordWriter(file);
  // An env asking for a chunk may wait for others that need one within a model call's time, at most one chunk of
  // steps: once aligned, envs stay in step and share calls.
  const batcher = new ChunkBatcher(policy, o.maxBatch, o.temporalEnsemble === null ? o.execHorizon : 1);
  const total = todo.length;
  let finished = 0, successes = 0, crashRetries = 0;
  const progress = (rec: EpisodeRecord) => {
    finished++;
    if (rec.success) successes++;
    const el = (performance.now() - t0) / 1000;
    o.log(`[${finished}/${total}] ${rec.suite} task ${rec.task} init ${rec.init}: ${rec.success ? 'success' : 'failure'} after ${rec.steps} steps ` +
      `(${rec.wall_s.toFixed(1)} s${rec.crash_retries ? `, ${rec.crash_retries} crash retr${rec.crash_retries > 1 ? 'ies' : 'y'}` : ''}) | ${successes}/${finished} ` +
      `${((100 * successes) / finished).toFixed(1)}% | ${((finished / el) * 3600).toFixed(0)} ep/h, ETA ${Math.round((el / finished) * (total - finished))} s`);
  };
  let failure: unknown = null;
  const workers: (SidecarWorker | null)[] = [];

  const workerLoop = async (w: number): Promise<void> => {
    // The worker's sidecar and the task it has open (both reset after a crash).
    const cur: { sim: SidecarWorker | null; opened: { key: string; info: TaskInfo } | null } = { sim: null, opened: null };
    const start = async () => {
      cur.sim = await SidecarWorker.start(o.sidecar);
      workers[w] = cur.sim;
      cur.opened = null;
      return cur.sim;
    };
    try {
      while (todo.length && failure === null) {
        const spec = todo.shift()!;
        const maxSteps = o.maxSteps ?? o.protocol.maxSteps(spec.suite);
        let retries = 0;
        for (;;) {
          let video: EpisodeVideo | null = null;
          const tStart = performance.now();
          try {
            const s: SidecarWorker = cur.sim ?? (await start());
            const key = `${spec.suite}/${spec.task}`;
            if (cur.opened?.key !== key) {
              const info = await s.open({ suite: spec.suite, task: spec.task, resolution: policy.resolution, seed: spec.seed, horizon: maxSteps + o.protocol.waitSteps + 50 });
              cur.opened = { key, info };
            }
            const info = cur.opened.info;
            if (spec.init >= info.num_init_states) throw new EvalError(`${spec.suite} task ${spec.task} has ${info.num_init_states} initial states; episode ${spec.episode} needs index ${spec.init}`);
            if (o.videos !== 'none') video = new EpisodeVideo(join(o.out, 'videos', spec.suite, `.tmp-${process.pid}-${w}.mp4`), policy.resolution);
            const v = video;
            const res = await runEpisode(s, batcher, w, policy, spec, { protocol: o.protocol, maxSteps, execHorizon: o.execHorizon, temporalEnsemble: o.temporalEnsemble, language: info.language },
              v ? (ob, step) => v.add(ob.obs.agentview_image as Uint8Array, ob.obs.robot0_eye_in_hand_image as Uint8Array, step === null ? `WAIT T ${ob.t}` : `STEP ${step}/${maxSteps}`) : undefined);
            const videoPath = video ? await finishVideo(video, o, spec, res.success) : null;
            const rec: EpisodeRecord = {
              suite: spec.suite, task: spec.task, task_name: info.task_name, language: info.language, episode: spec.episode, init: spec.init, seed: spec.seed,
              success: res.success, steps: res.steps, max_steps: maxSteps, env_steps: res.envSteps, wall_s: (performance.now() - tStart) / 1000,
              model_calls: res.modelCalls, replans: res.replans, crash_retries: retries, video: videoPath, checkpoint_step: policy.checkpointStep,
              policy: policy.describe, protocol: o.protocol.name, exec_horizon: o.execHorizon, temporal_ensemble: o.temporalEnsemble, worker: w,
              finished_at: new Date().toISOString(),
            };
            writer.append(rec);
            progress(rec);
            break;
          } catch (e) {
            video?.abort();
            if (!(e instanceof SidecarCrash) || retries >= o.maxRetries || failure !== null) throw e;
            retries++;
            crashRetries++;
            o.log(`eval: worker ${w} crashed during ${spec.suite} task ${spec.task} init ${spec.init} (${e.message.split('\n')[0]}); ` +
              `restarting it and retrying the episode from its initial state (retry ${retries} of ${o.maxRetries})`);
            cur.sim = null;
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
    writer.close();
    await Promise.all(workers.map((s) => s?.close()));
  }
  if (failure !== null) {
    if (failure instanceof SidecarCrash) throw new EvalError(`${failure.message}\n(the episode was retried ${o.maxRetries} time(s); --max-retries sets how often)`);
    throw failure;
  }
  const summary = writeReports(o.out, readAllRecords(o.out));
  return { ran: finished, skipped, crashRetries, modelCalls: batcher.calls, batchSizes: batcher.batchSizes, wallS: (performance.now() - t0) / 1000, summary, summaryText: markdown(summary) };
}

/** Close an episode's video: kept as videos/SUITE/taskTT_initII_epEE_OUTCOME.mp4 when --videos says so; its path relative to --out. */
async function finishVideo(video: EpisodeVideo, o: EvalOptions, spec: EpisodeSpec, success: boolean): Promise<string | null> {
  const keep = o.videos === 'all' || !success;
  const pad = (n: number) => String(n).padStart(2, '0');
  const name = `task${pad(spec.task)}_init${pad(spec.init)}_ep${pad(spec.episode)}_${success ? 'success' : 'failure'}.mp4`;
  const p = await video.finish(success, keep ? join(o.out, 'videos', spec.suite, name) : null);
  return p ? relative(o.out, p) : null;
}
