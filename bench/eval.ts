// bench:eval: evaluation throughput, episodes per hour, with N simulator workers sharing batched model calls
// against one worker run sequentially (one observation per model call), same back-end (the sidecar's test
// geometry), same model (a tiny rdt-libero policy trained for 2 steps on a synthetic suite), same episodes.
//   npm run bench:eval [-- --workers 4 --episodes 8 --max-steps 60 --exec-horizon 8 --size 64 --threads 1]
// --threads: libtorch intra-op threads (default 1: the sidecars need the other cores, and OpenMP threads that
// spin on an oversubscribed machine made one tiny-model call 28x slower here: 1763 ms against 63 ms).
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPolicy } from '../src/eval/policy_source.js';
import { PROTOCOLS } from '../src/eval/protocol.js';
import { runEval } from '../src/eval/run.js';
import { makeTinyPolicy } from '../test/helpers/tiny-policy.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' }, episodes: { type: 'string', default: '8' }, 'max-steps': { type: 'string', default: '60' },
    'exec-horizon': { type: 'string', default: '8' }, size: { type: 'string', default: '64' }, threads: { type: 'string', default: '1' },
  },
});
const N = Number(values.workers);
const work = mkdtempSync(join(tmpdir(), 'rdt-bench-eval-'));
const log = (s: string) => process.stdout.write(s + '\n');
try {
  log(`bench:eval: ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)}, ${values.threads} libtorch thread(s); training the tiny policy (${values.size}px) ...`);
  const { policy: dir } = await makeTinyPolicy(work, { size: Number(values.size) });
  const run = async (workers: number, tag: string) => {
    const policy = await openPolicy({ policy: dir, threads: Number(values.threads) });
    try {
      const r = await runEval(policy, {
        out: join(work, tag), suites: ['libero_goal'], tasks: [0], episodesPerTask: Number(values.episodes), protocol: PROTOCOLS.openpi,
        maxSteps: Number(values['max-steps']), execHorizon: Number(values['exec-horizon']), temporalEnsemble: null, workers, maxBatch: workers,
        seed: 7, shard: null, videos: 'none', maxRetries: 0, sidecar: { backend: 'test' }, log: () => {},
      });
      const perH = (r.ran / r.wallS) * 3600;
      const mean = r.batchSizes.reduce((a, b) => a + b, 0) / r.batchSizes.length;
      log(`${tag.padEnd(28)} ${r.ran} episodes in ${r.wallS.toFixed(1)} s = ${perH.toFixed(0)} episodes/h; ${r.modelCalls} model calls, mean batch ${mean.toFixed(2)}`);
      return perH;
    } finally {
      await policy.close();
    }
  };
  const seq = await run(1, '1 worker, sequential');
  const par = await run(N, `${N} workers, batched`);
  log(`ratio (${N} workers + batching / 1 worker): ${(par / seq).toFixed(2)}x`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
