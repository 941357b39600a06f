// Evaluation runs on the sidecar's test back-end (sidecar/reach_env.py), for the eval tests.
import { existsSync, readFileSync } from 'node:fs';
import { PROTOCOLS } from '../../src/eval/protocol.js';
import type { EvalOptions } from '../../src/eval/run.js';

/** Options for runEval on the test back-end; `env` reaches the sidecar (action log, fault injection). */
export function testEvalOptions(out: string, over: Partial<EvalOptions> = {}, env: Record<string, string> = {}): EvalOptions {
  return {
    out, suites: ['libero_goal'], tasks: [0], episodesPerTask: 3, protocol: PROTOCOLS.openpi, maxSteps: null, execHorizon: 16,
    temporalEnsemble: null, workers: 1, maxBatch: 1, seed: 7, shard: null, videos: 'none', maxRetries: 2,
    sidecar: { backend: 'test', env }, log: () => {}, ...over,
  };
}

export interface LoggedAction {
  suite: string;
  task: number;
  init: number;
  t: number;
  action: number[];
}

/** The actions the test back-end received (RDT_TEST_ENV_ACTION_LOG), grouped per episode start (t = 0), in order. */
export function actionLog(file: string): LoggedAction[][] {
  if (!existsSync(file)) return [];
  const episodes: LoggedAction[][] = [];
  const open = new Map<string, LoggedAction[]>();
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const a = JSON.parse(line) as LoggedAction;
    const key = `${a.suite}/${a.task}/${a.init}`;
    if (a.t === 0) {
      const ep: LoggedAction[] = [];
      episodes.push(ep);
      open.set(key, ep);
    }
    open.get(key)!.push(a);
  }
  return episodes;
}
