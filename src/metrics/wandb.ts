// Weights & Biases, when the user asks for it (`report_to: [wandb]`) and has it set up: metrics go to
// the user's own `wandb` Python package through a child process reading JSON lines, so rdt-libero
// needs no W&B client of its own and never requires one. Offline runs work with WANDB_MODE=offline.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { MetricSink } from './sink.js';
import { RdtError } from '../util/errors.js';

const SCRIPT = `
import json, sys
try:
    import wandb
except ImportError:
    sys.stderr.write("NO_WANDB\\n"); sys.exit(3)
init = json.loads(sys.stdin.readline())
run = wandb.init(project=init["project"], name=init.get("name"), dir=init["dir"], config=init["config"], resume="allow", id=init.get("id"))
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("finish"):
        break
    run.log(msg["values"], step=msg["step"])
run.finish()
`;

export class WandbError extends RdtError {
  override name = 'WandbError';
}

export class WandbSink implements MetricSink {
  readonly #child: ChildProcess;

  constructor(opts: { project: string; name?: string; id?: string; dir: string; config: unknown; python?: string }) {
    const py = opts.python ?? process.env.PYTHON ?? 'python3';
    // Fail at start, not hours into a run, when the package is missing.
    const probe = spawnSync(py, ['-c', 'import wandb'], { encoding: 'utf8' });
    if (probe.status !== 0)
      throw new WandbError(`report_to includes 'wandb', but '${py}' cannot import the wandb package. ` +
        'Install it (pip install wandb) and log in (wandb login), or set WANDB_MODE=offline, or drop wandb from report_to.');
    this.#child = spawn(py, ['-u', '-c', SCRIPT], { stdio: ['pipe', 'ignore', 'inherit'] });
    this.#child.stdin!.write(JSON.stringify({ project: opts.project, name: opts.name, id: opts.id, dir: opts.dir, config: opts.config }) + '\n');
  }

  log(step: number, values: Record<string, number | string>): void {
    this.#child.stdin!.write(JSON.stringify({ step, values }) + '\n');
  }

  close(): void {
    this.#child.stdin!.end(JSON.stringify({ finish: true }) + '\n');
  }

  /** Resolves when the W&B process has flushed and exited. */
  closed(): Promise<number | null> {
    return new Promise((resolve) => {
      if (this.#child.exitCode !== null) resolve(this.#child.exitCode);
      else this.#child.once('exit', (code) => resolve(code));
    });
  }
}
