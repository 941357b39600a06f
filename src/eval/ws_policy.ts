// A remote policy behind the evaluation's ChunkPolicy interface: any server speaking openpi's websocket protocol
// (rdt-libero serve, openpi's scripts/serve_policy.py), so other people's models are evaluated under the same protocol.
//
// What goes on the wire is exactly what openpi's client sends (packages/openpi-client/src/openpi_client/
// websocket_client_policy.py at openpi 15a9616): on connect, read one metadata frame; then per chunk one binary
// msgpack frame with the observation, answered by one binary frame. No control messages: openpi's client and
// server have none (its reset() sends nothing; its server hands every frame to policy.infer, and a frame the policy
// cannot take gets a traceback text frame and close 1011), so nothing else is ever sent, to any server.
//
// - Format: what the server's metadata says. `format: 'native'` (rdt-libero serve --format native) gets the
//   simulator's own keys at the server's `image` size, plus the policy's previous frames ('history', one env step
//   apart, as in training: the metadata's `history` says how many) and its replies carry the raw chunk, which is
//   decoded here step by step against the pose measured before each step, as a local evaluation decodes it; so a
//   checkpoint served natively sees and does exactly what it does locally. Anything else (openpi's servers send
//   no format) gets openpi's LIBERO example request (src/openpi/formats.ts) of the current frame, rendered at 256 like
//   that client, and its `actions` are executed as sent.
// - One connection per simulator worker, and each env's request goes out as soon as the env asks (`concurrent`: the
//   evaluation's batcher does not gather them), so a batching server serves concurrent envs in one model call.
// - Exec horizon: the metadata's `exec_horizon` when it names one (rdt-libero serve: the policy.json value), else
//   openpi's LIBERO client default, replan_steps = 5 (examples/libero/main.py at 15a9616).
// - Actions: H comes from the metadata's `action_horizon` when it has one (every reply must then match it), else
//   from each reply.
// - Seeds: when the server takes a per-request `seed` (its metadata lists it, as rdt-libero serve does), each
//   request is sent its seeding.ts requestSeed, so a remote evaluation is reproducible whatever the worker count,
//   timing or resume. Other servers sample as they like.
// - Failures: an error frame from the server (BadRequest, InferenceFailed, openpi's traceback, ...) ends the
//   evaluation with it. A dropped connection, a client-side timeout, ServerBusy or TooManyConnections before an
//   episode's first reply is retried on a new connection up to MAX_RECONNECTS times with growing pauses (each
//   counted in `reconnects` and logged); past that the evaluation ends with an EvalError, keeping the recorded
//   episodes for a resume. The same trouble later in an episode ends the episode with PolicyReconnected: whatever
//   the server held for it is gone, so the run retries it from its initial state (counted, like a sidecar crash).
import { type NdArray, isNdArray, ndNumbers } from '../openpi/codec.js';
import { OpenpiClient } from '../openpi/client.js';
import { OpenpiError } from '../openpi/errors.js';
import { type ObsFrame, type RobotObs, decodeAction } from '../data/adapter.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import type { PolicyInput } from '../policy/policy.js';
import { EvalError, PolicyReconnected } from './errors.js';
import { OPENPI_IMAGE, OPENPI_RENDER, liberoRequest, nativeRequest } from '../openpi/formats.js';
import { type ActionChunk, type ChunkPolicy, historyInputs } from './chunk_policy.js';

export const MAX_RECONNECTS = 3;
/** openpi's LIBERO example client executes replan_steps = 5 actions of each reply (examples/libero/main.py at 15a9616). */
export const OPENPI_REPLAN_STEPS = 5;
/** Pause before reconnect attempt k (ms). */
const BACKOFF_MS = [500, 1000, 2000];
/** A model's first call may compile (openpi's JAX models): generous, like --sim-timeout's default. */
const REQUEST_TIMEOUT_MS = 300_000;

interface EnvConn {
  client: OpenpiClient | null;
  /** It had a connection before (a new one is then a reconnect, counted). */
  connected: boolean;
  /** Requests answered since this env's episode started. */
  answered: number;
}

export interface WsPolicyOptions {
  log?: (line: string) => void;
}

const positiveInt = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : null);

/** What identifies the served policy across reconnects. */
function servedPolicy(m: Record<string, unknown>): string {
  return JSON.stringify([m.format === 'native' ? 'native' : 'libero', positiveInt(m.action_horizon), m.history ?? null, m.action_encoding ?? null, m.policy ?? null]);
}

export class WsChunkPolicy implements ChunkPolicy {
  readonly describe: string;
  readonly historySize: number;
  readonly resolution: number;
  /** The training step the server's metadata names (rdt-libero serve: `checkpoint_step`), for the reports. */
  readonly checkpointStep: number | null;
  readonly execHorizon: number;
  readonly inputs: string;
  /** Every env's request goes out at once on its own connection; a batching server serves them in one model call. */
  readonly concurrent = true;
  /** Connections re-opened after a drop, a timeout or a busy server. */
  reconnects = 0;
  private readonly format: 'libero' | 'native';
  private readonly metaHorizon: number | null;
  private lastHorizon: number | null = null;
  private readonly takesSeed: boolean;
  /** native: the action encoding the reply's raw `chunk` is decoded with. */
  private readonly encoding: string | null = null;
  private readonly identity: string;
  private readonly envs = new Map<number, EnvConn>();
  private closed = false;

  private constructor(readonly url: string, private spare: OpenpiClient | null, private readonly opts: WsPolicyOptions) {
    const m = spare!.metadata;
    if (m.format !== undefined && m.format !== 'libero' && m.format !== 'native')
      throw new EvalError(`${url}: the server takes observations in format ${JSON.stringify(m.format).slice(0, 80)}; rdt-libero eval sends 'libero' (openpi's LIBERO client) or 'native' (rdt-libero serve --format native)`);
    this.format = m.format === 'native' ? 'native' : 'libero';
    this.identity = servedPolicy(m);
    this.metaHorizon = positiveInt(m.action_horizon);
    this.checkpointStep = typeof m.checkpoint_step === 'number' && Number.isInteger(m.checkpoint_step) ? m.checkpoint_step : null;
    this.execHorizon = positiveInt(m.exec_horizon) ?? OPENPI_REPLAN_STEPS;
    const keys = m.observation_keys as { optional?: unknown } | undefined;
    this.takesSeed = Array.isArray(keys?.optional) && keys.optional.includes('seed');
    if (this.format === 'native') {
      const img = m.image as { height?: unknown; width?: unknown } | undefined;
      if (typeof img?.height !== 'number' || img.height !== img.width || img.height < 8)
        throw new EvalError(`${url}: the server takes the native format but its metadata has no square 'image' size (${JSON.stringify(img)}); LIBERO renders square cameras`);
      this.resolution = img.height;
      const H = positiveInt(m.history);
      if (H === null) throw new EvalError(`${url}: the server takes the native format but its metadata has no 'history' (frames per observation)`);
      this.historySize = H;
      if (typeof m.action_encoding !== 'string' || !(m.action_encoding in ENCODINGS))
        throw new EvalError(`${url}: the native format's replies carry raw chunks, but the metadata's action_encoding ${JSON.stringify(m.action_encoding)} is not one rdt-libero decodes (${Object.keys(ENCODINGS).join(', ')})`);
      this.encoding = m.action_encoding;
      this.inputs = historyInputs(H, `native format at ${this.resolution}px, sent with each request`);
    } else {
      this.resolution = OPENPI_RENDER;
      this.historySize = 1;
      // rdt-libero serve says what it does with one frame per request; openpi's servers say nothing.
      this.inputs = typeof m.history_inputs === 'string' ? `${m.history_inputs} (openpi's LIBERO request)`
        : `the current frame in openpi's LIBERO request (${OPENPI_IMAGE}x${OPENPI_IMAGE} from a ${OPENPI_RENDER}px render, rotated 180 degrees; 8-D state)`;
    }
    // Names the policy, not the address, so a resume against the same server moved to another port is accepted.
    const who = typeof m.policy === 'string' ? `${typeof m.server === 'string' ? m.server : 'server'} policy '${m.policy}'` : url;
    this.describe = `openpi remote ${who} (format ${this.format}, action horizon ${this.metaHorizon ?? 'per reply'}${this.takesSeed ? ', seeded requests' : ''})`;
  }

  /** Connect and read the metadata; a server that cannot be reached is an EvalError naming the address. */
  static async open(url: string, opts: WsPolicyOptions = {}): Promise<WsChunkPolicy> {
    let client: OpenpiClient;
    try {
      client = await OpenpiClient.connect(url, { timeoutMs: REQUEST_TIMEOUT_MS });
    } catch (e) {
      throw new EvalError(`--policy ${url}: ${(e as Error).message}; start the policy server (e.g. rdt-libero serve --checkpoint DIR --port N) or fix the address`);
    }
    try {
      return new WsChunkPolicy(url, client, opts);
    } catch (e) {
      await client.close();
      throw e;
    }
  }

  /** The actions per reply: the metadata's, else the last reply's (unknown before the first: no limit yet). */
  get chunkSize(): number {
    return this.metaHorizon ?? this.lastHorizon ?? Number.POSITIVE_INFINITY;
  }

  startEpisode(env: number): void {
    this.env(env).answered = 0;
  }

  predictChunks(inputs: readonly PolicyInput[], envs?: readonly number[], seeds?: readonly number[]): Promise<ActionChunk[]> {
    return Promise.all(inputs.map((input, i) => this.one(envs?.[i] ?? i, input, seeds?.[i])));
  }

  private async one(env: number, input: PolicyInput, seed: number | undefined): Promise<ActionChunk> {
    const frame = input.history[input.history.length - 1];
    if (!frame) throw new EvalError('internal: a remote policy request without a current frame');
    let obs: Record<string, unknown>;
    if (this.format === 'native') {
      if (input.history.length !== this.historySize) throw new EvalError(`internal: ${input.history.length} frames for a server that takes ${this.historySize}`);
      obs = nativeRequest(frame, this.resolution, input.instruction);
      if (this.historySize > 1) obs.history = input.history.slice(0, -1).map((f: ObsFrame | null) => (f ? nativeRequest(f, this.resolution, null) : null));
    } else obs = liberoRequest(frame, this.resolution, input.instruction);
    if (this.takesSeed) {
      if (seed === undefined) throw new EvalError('internal: a seeded server needs each request\'s seed');
      obs.seed = seed;
    }
    const reply = await this.exchange(env, (c) => c.infer(obs));
    return this.chunkOf(reply);
  }

  private chunkOf(reply: Record<string, unknown>): ActionChunk {
    const a = reply.actions;
    const bad = (what: string, key = 'actions', want = 'a float array (H, 7) of LIBERO commands') => new EvalError(`${this.url}: the reply's '${key}' ${what}; expected ${want}`);
    if (!isNdArray(a)) throw bad(`is ${a === undefined ? 'missing' : 'not an array'} (reply keys: ${Object.keys(reply).join(', ')})`);
    const na = a as NdArray;
    if (!/^<f[48]$/.test(na.dtype) || na.shape.length !== 2 || na.shape[1] !== 7 || na.shape[0] < 1) throw bad(`is ${na.dtype} [${na.shape.join(', ')}]`);
    const H = na.shape[0];
    if (this.metaHorizon !== null && H !== this.metaHorizon) throw bad(`has ${H} rows but the server's metadata says action_horizon ${this.metaHorizon}`);
    const rows = Float64Array.from(ndNumbers(na));
    if (!rows.every(Number.isFinite)) throw bad('holds NaN or infinity');
    this.lastHorizon = H;
    const step = (k: number) => {
      if (!(k >= 0 && k < H)) throw new EvalError(`internal: action ${k} of a ${H}-step remote chunk`);
    };
    if (this.encoding !== null) {
      // native: the raw chunk, decoded against the pose measured before each step, as a local evaluation does.
      const c = reply.chunk;
      const want = `a float64 array (${H}, ${STATE_VEC_LEN}) of unified action vectors`;
      if (!isNdArray(c) || c.dtype !== '<f8' || c.shape.length !== 2 || c.shape[0] !== H || c.shape[1] !== STATE_VEC_LEN)
        throw bad(isNdArray(c) ? `is ${c.dtype} [${c.shape.join(', ')}]` : 'is missing', 'chunk', want);
      const raw = Float64Array.from(ndNumbers(c));
      if (!raw.every(Number.isFinite)) throw bad('holds NaN or infinity', 'chunk', want);
      const encoding = this.encoding;
      return { length: H, action: (k: number, measured: RobotObs) => (step(k), decodeAction({ encoding }, raw, k * STATE_VEC_LEN, measured)) };
    }
    // Decoded by the server against the pose in the request: executed as sent, whatever the pose is now.
    return { length: H, action: (k: number, _measured: RobotObs) => (step(k), rows.slice(k * 7, k * 7 + 7)) };
  }

  private env(env: number): EnvConn {
    let s = this.envs.get(env);
    if (!s) {
      // The connection that read the metadata serves the first env.
      s = { client: this.spare, connected: this.spare !== null, answered: 0 };
      this.spare = null;
      this.envs.set(env, s);
    }
    return s;
  }

  /** One request on the env's connection, reconnecting (bounded, counted) when the connection is the problem. */
  private async exchange(env: number, call: (c: OpenpiClient) => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const s = this.env(env);
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new EvalError(`${this.url}: the remote policy was closed`);
      try {
        if (!s.client) {
          s.client = await this.connect();
          if (s.connected) this.reconnects++;
          s.connected = true;
        }
        const reply = await call(s.client);
        s.answered++;
        return reply;
      } catch (e) {
        const c = s.client;
        s.client = null;
        void c?.close();
        if (e instanceof EvalError) throw e;
        const why = (e as Error).message.split('\n')[0];
        if (!(e instanceof OpenpiError)) throw new EvalError(`${this.url}: ${why}`);
        if (!retryable(e))
          throw new EvalError(`remote policy ${this.url} answered ${e.kind}: ${why.replace(/^server: /, '')}; the evaluation stops (episodes already recorded are kept)`);
        if (s.answered > 0)
          throw new PolicyReconnected(`remote policy ${this.url}: ${why} (${e.kind}) after ${s.answered} repl${s.answered > 1 ? 'ies' : 'y'} of this episode`);
        if (attempt >= MAX_RECONNECTS)
          throw new EvalError(`remote policy ${this.url}: ${why} (${e.kind}), still after ${MAX_RECONNECTS} reconnect attempts; ` +
            'the episodes already recorded are kept: restart the server and re-run the same command to resume');
        this.opts.log?.(`eval: remote policy ${this.url}: ${why} (${e.kind}); reconnecting (attempt ${attempt + 1} of ${MAX_RECONNECTS})`);
        await new Promise((r) => setTimeout(r, BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]));
      }
    }
  }

  /** A new connection whose metadata must still describe the same policy. */
  private async connect(): Promise<OpenpiClient> {
    const c = await OpenpiClient.connect(this.url, { timeoutMs: REQUEST_TIMEOUT_MS });
    if (servedPolicy(c.metadata) !== this.identity) {
      await c.close();
      throw new EvalError(`${this.url}: after a reconnect the server describes another policy (${servedPolicy(c.metadata)} instead of ${this.identity}: ` +
        'format, action horizon, history, encoding, name); results of two policies must not mix');
    }
    return c;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [this.spare, ...[...this.envs.values()].map((s) => s.client)];
    this.spare = null;
    for (const s of this.envs.values()) s.client = null;
    await Promise.all(all.map((c) => c?.close()));
  }
}

/** Connection trouble (worth a new connection) vs. the server's answer about the request (not). */
function retryable(e: OpenpiError): boolean {
  if (e.kind === 'ServerBusy' || e.kind === 'TooManyConnections' || e.kind === 'Timeout') return true;
  return e.kind === 'ProtocolError' && /^(connection closed|cannot connect)/.test(e.message);
}
