// `rdt-libero demo` (what `npm start` runs): record a scripted expert in the simulator's test back-end, fine-tune
// the tiny RDT on it with the DEMO encoders, and measure closed-loop success before and after training with
// `rdt-libero eval --sim test`. Argument parsing and printing only; the work is in src/demo.
import * as torch from '../engine/index.js';
import { type DemoSettings, runDemo } from '../demo/run.js';
import { demoReport } from '../demo/report.js';
import { DemoStopped } from '../demo/errors.js';
import { StopSignals } from '../train/stop_signals.js';
import { parseCommandArgs, positiveInt } from './args.js';

/** The demo as `npm start` runs it. */
export const DEMO: Readonly<DemoSettings> = Object.freeze({
  suite: 'libero_object', tasks: [0, 1, 2, 3], resolution: 64, demosPerTask: 30, firstDemoInit: 20,
  episodes: 10, maxSteps: 50, steps: 600, batch: 16, learningRate: 1e-3, model: { pred_horizon: 16 },
  execHorizons: [8, 16], temporalEnsemble: null, workers: 2, seed: 0,
});

/** --quick (the CI test): fewer demonstrations, steps and episodes. */
export const QUICK: Readonly<DemoSettings> = Object.freeze({
  ...DEMO, demosPerTask: 15, episodes: 5, steps: 300, execHorizons: [8], temporalEnsemble: null,
});

const USAGE = `usage: rdt-libero demo [--out DIR] [--quick] [--steps N] [--threads N]

Closes the loop on one CPU in a few minutes, with no downloads:
  1. records a scripted expert in the simulator sidecar's TEST back-end (four coloured blocks on a table; the
     instruction names the one to grasp): ${DEMO.demosPerTask} demonstrations per task for ${DEMO.suite} tasks ${DEMO.tasks.join(',')}, from
     initial states ${DEMO.firstDemoInit}-${DEMO.firstDemoInit + DEMO.demosPerTask - 1}, in LIBERO's HDF5 layout (reused when present);
  2. fine-tunes a tiny RDT from scratch with the DEMO encoders (hashed words standing in for T5, one image token
     per palette colour standing in for SigLIP, which need multi-GB downloads), state and actions z-scored;
  3. runs rdt-libero eval --sim test closed loop on initial states 0-${DEMO.episodes - 1} (not used for the demonstrations) for
     the untrained and the trained policy, at exec horizons ${DEMO.execHorizons.join(', ')}, and reports success rates with
     Wilson intervals, per task, with a video of a success and of a failure.

options:
  --out DIR     run folder (default runs/demo): data/ holds the recordings (reused), train/, untrained/ and
                eval/ are replaced on every run
  --quick       a much shorter run (for tests): ${QUICK.demosPerTask} demonstrations per task, ${QUICK.steps} steps, ${QUICK.episodes} episodes per task, one horizon
  --steps N     optimizer steps (default ${DEMO.steps}; --quick: ${QUICK.steps})
  --threads N   libtorch CPU threads of the training (default 1: the tiny model gains nothing from more, and idle
                OpenMP threads spin against the data-loading worker on small machines)
`;

const DEMO_ARGS = {
  command: 'demo',
  usage: USAGE,
  options: { steps: { type: 'string' }, out: { type: 'string', default: 'runs/demo' }, quick: { type: 'boolean' }, threads: { type: 'string', default: '1' } },
} as const;

export async function demo(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(DEMO_ARGS, args);
  if (!parsed) return 0;
  const { values } = parsed;
  const base = values.quick ? QUICK : DEMO;
  const settings: DemoSettings = { ...base, steps: values.steps !== undefined ? positiveInt('steps', values.steps, 'demo') : base.steps };
  torch.setNumThreads(positiveInt('threads', values.threads, 'demo'));
  const say = (s: string) => process.stderr.write(s + '\n');
  say('rdt-libero demo: record a scripted expert in the simulator\'s TEST back-end, fine-tune a tiny RDT with DEMO encoders ' +
    '(NOT T5/SigLIP) on CPU, and measure closed-loop success before and after');
  let r;
  try {
    r = await runDemo(settings, values.out, say);
  } catch (e) {
    if (!(e instanceof DemoStopped)) throw e;
    say(e.message);
    return StopSignals.exitCode(e.signal);
  }
  process.stdout.write(demoReport(r));
  return 0;
}
