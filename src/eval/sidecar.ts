// One simulator worker: a child process running sidecar/rdt_sidecar.py, spoken to with the line protocol of
// sidecar/PROTOCOL.md (a JSON line per request on its stdin; a JSON line per reply on its stdout, followed by
// the raw image bytes the reply announces). Requests are strictly sequential per worker.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EvalError, SidecarCrash, SimEnvError, SimSetupError } from './errors.js';

export const SIDECAR_PROTOCOL = 1;
export const SIDECAR_SCRIPT = fileURLToPath(new URL('../../../sidecar/rdt_sidecar.py', import.meta.url));

export type SimBackend = 'libero' | 'test';

export interface SidecarOptions {
  backend: SimBackend;
  /** The interpreter with LIBERO installed (--sim-python); default $PYTHON or python3. */
  python?: string;
  /** Extra environment for the child (e.g. MUJOCO_GL). */
  env?: Record<string, string>;
  /** Where the child's stderr goes, line by line (default: dropped after the last 50 lines are kept for errors). */
  onStderr?: (line: string) => void;
  /**
   * Seconds a request may take before the sidecar is taken for hung (a render back-end deadlock, a stuck
   * physics solve): it is killed, which the harness handles like a crash. Default 300 (opening a LIBERO task
   * with its assets takes seconds, a step tens of milliseconds).
   */
  timeoutS?: number;
  /**
   * Seconds the start-up (the LIBERO, robosuite and MuJoCo imports, the render back-end's initialisation) may take:
   * a sidecar not ready by then is killed and reported as a setup problem (not retried: a hung EGL or LIBERO import
   * hangs again). Default 300.
   */
  startTimeoutS?: number;
}

export interface OpenRequest {
  suite: string;
  task: number;
  resolution: number;
  seed: number;
  /** robosuite's horizon: kept above the episode budget (wait + max steps). */
  horizon: number;
}

export interface TaskInfo {
  language: string;
  task_name: string;
  num_init_states: number;
  state_dim: number;
  cameras: string[];
  horizon: number;
  /** Every task's instruction of the suite, in task order (for the wrong-instruction control); absent from old sidecars. */
  suite_languages?: string[];
}

/** A reset or step reply: the raw observation in robosuite's keys and units, images as rendered (upside down). */
export interface SimObs {
  obs: Record<string, number[] | Uint8Array>;
  done: boolean;
  reward: number;
  /** env steps since the reset */
  t: number;
  /** The simulator's flattened state after this reset or step (LIBERO: MuJoCo's [time, qpos, qvel]); for recording. */
  state?: number[];
  /** A perturbed reset's report of what the simulator applied (layout: the placements drawn and re-draws). */
  perturbation?: Record<string, unknown>;
}

interface Pending {
  resolve: (v: { header: Record<string, unknown>; blobs: Map<string, Uint8Array> }) => void;
  reject: (e: Error) => void;
  op: string;
}

export class SidecarWorker {
  readonly pid: number;
  private child: ChildProcessWithoutNullStreams;
  private buf: Buffer = Buffer.alloc(0);
  private header: Record<string, unknown> | null = null;
  private pending: Pending | null = null;
  private nextId = 1;
  private exited: string | null = null;
  private stderrTail: string[] = [];
  /** Why the harness killed it (a request timed out), for the crash message. */
  private hung: string | null = null;
  /** Killed because it never said ready: a setup problem, not a crash. */
  private startTimedOut = false;
  private readyWait: Pending;
  readonly ready: Promise<Record<string, unknown>>;
  /** The ready line's package versions (robosuite, mujoco, numpy, ...), once started. */
  versions: Record<string, string> = {};

  private constructor(readonly opts: SidecarOptions) {
    const python = opts.python ?? process.env.PYTHON ?? 'python3';
    this.child = spawn(python, ['-u', SIDECAR_SCRIPT, '--backend', opts.backend], {
      env: { ...process.env, PYTHONUNBUFFERED: '1', ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    let resolveReady!: (v: Record<string, unknown>) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise((res, rej) => ((resolveReady = res), (rejectReady = rej)));
    this.readyWait = { op: 'start', resolve: ({ header }) => resolveReady(header), reject: rejectReady };
    this.ready.catch(() => {}); // observed by start()
    this.child.stdout.on('data', (d: Buffer) => this.onData(d));
    let partial = '';
    this.child.stderr.on('data', (d: Buffer) => {
      const lines = (partial + d.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        this.stderrTail.push(l);
        if (this.stderrTail.length > 50) this.stderrTail.shift();
        opts.onStderr?.(l);
      }
    });
    this.child.on('error', (e) => this.fail(`could not start ${python}: ${e.message} (pass the interpreter with LIBERO installed as --sim-python)`, false));
    this.child.on('exit', (code, signal) =>
      this.fail(`sidecar (pid ${this.pid}) ${this.hung ? `${this.hung} and was killed` : `exited ${signal ? `by signal ${signal}` : `with code ${code}`}`}`, true));
    this.child.stdin.on('error', () => {}); // EPIPE after a crash: reported by 'exit'
  }

  /**
   * Start a sidecar and wait for its ready line, at most opts.startTimeoutS; a setup failure, or no ready line in
   * time, becomes a SimSetupError with the fix.
   */
  static async start(opts: SidecarOptions): Promise<SidecarWorker> {
    const w = new SidecarWorker(opts);
    const limit = opts.startTimeoutS ?? 300;
    const timer = setTimeout(() => {
      w.hung = `did not start within ${limit} s (--sim-start-timeout)`;
      w.startTimedOut = true;
      w.child.kill('SIGKILL');
    }, limit * 1000);
    let hello: Record<string, unknown>;
    try {
      hello = await w.ready;
    } finally {
      clearTimeout(timer);
    }
    w.versions = (hello.versions ?? {}) as Record<string, string>;
    if (hello.protocol !== SIDECAR_PROTOCOL)
      throw new EvalError(`sidecar ${SIDECAR_SCRIPT} speaks protocol ${String(hello.protocol)}, this rdt-libero speaks ${SIDECAR_PROTOCOL}: use the sidecar/ of this checkout`);
    return w;
  }

  get alive(): boolean {
    return this.exited === null;
  }

  /** The last lines the sidecar wrote to stderr (for error messages). */
  stderr(n = 10): string {
    return this.stderrTail.slice(-n).join('\n');
  }

  private fail(why: string, crash: boolean): void {
    if (this.exited !== null) return;
    this.exited = why;
    const tail = this.stderr(5);
    const msg = `${why}${tail ? `; its last stderr lines:\n${tail}` : ''}`;
    const err = this.startTimedOut
      ? new SimSetupError(`${why}: the import of LIBERO, robosuite and MuJoCo or the render back-end's start hangs; fix: run \`rdt-libero doctor --sim\` with the same ` +
        `--sim-python, try MUJOCO_GL=osmesa (CPU) or MUJOCO_GL=egl with a working EGL driver, and check that ~/.libero/config.yaml exists${tail ? `; its last stderr lines:\n${tail}` : ''}`)
      : crash ? new SidecarCrash(msg) : new EvalError(msg);
    this.readyWait.reject(err);
    const p = this.pending;
    this.pending = null;
    p?.reject(err);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (!this.header) {
        const nl = this.buf.indexOf(10);
        if (nl < 0) return;
        const line = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        try {
          this.header = JSON.parse(line) as Record<string, unknown>;
        } catch {
          this.fail(`sidecar wrote a line that is not protocol JSON: ${line.slice(0, 200)}`, false);
          this.child.kill('SIGKILL');
          return;
        }
      }
      const images = (this.header.images ?? []) as { key: string; bytes: number }[];
      const need = images.reduce((s, i) => s + i.bytes, 0);
      if (this.buf.length < need) return;
      const blobs = new Map<string, Uint8Array>();
      let off = 0;
      for (const i of images) {
        blobs.set(i.key, new Uint8Array(this.buf.subarray(off, off + i.bytes))); // a copy: the buffer is reused
        off += i.bytes;
      }
      this.buf = this.buf.subarray(off);
      const header = this.header;
      this.header = null;
      this.dispatch(header, blobs);
    }
  }

  private dispatch(header: Record<string, unknown>, blobs: Map<string, Uint8Array>): void {
    if (header.type === 'ready') return this.readyWait.resolve({ header, blobs });
    if (header.type === 'fatal') {
      this.exited = 'fatal';
      return this.readyWait.reject(new SimSetupError(`${String(header.error)}; fix: ${String(header.fix)}`));
    }
    const p = this.pending;
    this.pending = null;
    if (!p) return this.fail(`sidecar sent a reply nobody asked for: ${JSON.stringify(header).slice(0, 200)}`, false);
    if (header.ok) return p.resolve({ header, blobs });
    const why = `sidecar ${p.op} failed (${String(header.kind)}): ${String(header.error)}`;
    p.reject(header.kind === 'setup' ? new SimSetupError(`${why}; fix: ${String(header.fix)}`) : header.kind === 'env' ? new SimEnvError(why) : new EvalError(why));
  }

  private request(op: string, fields: Record<string, unknown>): Promise<{ header: Record<string, unknown>; blobs: Map<string, Uint8Array> }> {
    if (this.exited !== null) return Promise.reject(new SidecarCrash(`sidecar (pid ${this.pid}) is not running: ${this.exited}`));
    if (this.pending) return Promise.reject(new Error(`sidecar ${op} while ${this.pending.op} is in flight (a bug: requests are sequential)`));
    const limit = this.opts.timeoutS ?? 300;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.hung = `did not answer '${op}' within ${limit} s`;
        this.child.kill('SIGKILL');
      }, limit * 1000);
      const done = () => clearTimeout(timer);
      this.pending = { resolve: (v) => (done(), resolve(v)), reject: (e) => (done(), reject(e)), op };
      this.child.stdin.write(JSON.stringify({ id: this.nextId++, op, ...fields }) + '\n');
    });
  }

  async open(req: OpenRequest): Promise<TaskInfo> {
    const { header } = await this.request('open', { ...req });
    return header as unknown as TaskInfo;
  }

  /** Reset to a fixed initial state (or an explicit one); with `seed`, numpy and the env are seeded first, else they draw on. */
  async reset(r: { initIndex?: number; state?: number[]; seed?: number; perturb?: Record<string, unknown> }): Promise<SimObs> {
    return toObs(await this.request('reset', { init_index: r.initIndex, state: r.state, seed: r.seed, perturb: r.perturb }));
  }

  async step(action: ArrayLike<number>): Promise<SimObs> {
    for (let i = 0; i < 7; i++) if (!Number.isFinite(action[i])) throw new EvalError(`action has a non-finite value at index ${i}: [${Array.from(action).join(', ')}]`);
    return toObs(await this.request('step', { action: Array.from(action) }));
  }

  /** Ask the sidecar to close its env and exit; kill it if it does not within `ms`. */
  async close(ms = 5000): Promise<void> {
    if (this.exited !== null) return;
    const gone = new Promise<void>((res) => this.child.once('exit', () => res()));
    try {
      await Promise.race([this.request('close', {}), gone]);
    } catch {
      // already dying
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms);
    await gone;
    clearTimeout(timer);
  }

  /** Kill the process now (crash tests, abort). */
  kill(): void {
    if (this.exited === null) this.child.kill('SIGKILL');
  }
}

function toObs({ header, blobs }: { header: Record<string, unknown>; blobs: Map<string, Uint8Array> }): SimObs {
  const obs: Record<string, number[] | Uint8Array> = { ...(header.obs as Record<string, number[]>) };
  for (const [k, v] of blobs) obs[k] = v;
  const perturbation = header.perturbation as Record<string, unknown> | undefined;
  return { obs, done: header.done === true, reward: Number(header.reward), t: Number(header.t), state: header.state as number[] | undefined, ...(perturbation ? { perturbation } : {}) };
}
