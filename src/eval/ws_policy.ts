// A remote policy behind the evaluation's ChunkPolicy interface: any server speaking openpi's websocket protocol
// (rdt-libero serve, openpi's serve_policy.py), so other people's models are evaluated under the same protocol.
//
// - Format: what the server's metadata says. `format: 'native'` (rdt-libero serve --format native) gets the
//   simulator's own keys at the server's `image` size; anything else (openpi's servers send no format) gets
//   openpi's LIBERO example request (openpi_request.ts), rendered at 256 like that client.
// - One connection per simulator worker: the server keeps each connection's observation history, so an env's
//   frames never mix with another's; `episode_start` is sent on it before every episode (openpi_client's
//   episode_start). Concurrent envs' requests go out on their own connections at once, so a batching server
//   serves them in one model call. The request carries only the current frame (historySize 1): the server holds
//   the history, made of the frames it was sent, i.e. one per replan.
// - Actions: the reply's `actions` (H, 7) are LIBERO commands already (the server decoded them against the pose
//   in the request), executed as they are. H comes from the metadata's `action_horizon` when it has one (every
//   reply must then match it), else from each reply.
// - Seeds: when the server takes a per-request `seed` (its metadata lists it, as rdt-libero serve does), request
//   i of an episode (0-based, counted from its episode_start) is sent seed (--seed + i) mod 2^31, so a remote
//   evaluation is reproducible whatever the worker count and timing. Other servers sample as they like.
// - Failures: an error frame from the server (BadRequest, InferenceFailed, ...) ends the evaluation with it. A
//   dropped connection, a client-side timeout, ServerBusy or TooManyConnections is retried on a new connection
//   up to MAX_RECONNECTS times per request with growing pauses (each counted in `reconnects` and logged); past
//   that the evaluation ends with an EvalError, keeping the recorded episodes for a resume.
import { type NdArray, isNdArray, ndNumbers } from '../serve/codec.js';
import { OpenpiClient } from '../serve/client.js';
import { ServeError } from '../serve/errors.js';
import type { RobotObs } from '../data/adapter.js';
import type { PolicyInput } from '../policy/policy.js';
import { EvalError } from './errors.js';
import { OPENPI_RENDER, liberoRequest, nativeRequest } from './openpi_request.js';
import type { ActionChunk, ChunkPolicy } from './policy_source.js';

export const MAX_RECONNECTS = 3;
/** Pause before reconnect attempt k (ms). */
const BACKOFF_MS = [500, 1000, 2000];
/** A model's first call may compile (openpi's JAX models): generous, like --sim-timeout's default. */
const REQUEST_TIMEOUT_MS = 300_000;
const SEED_MOD = 2 ** 31;

interface EnvConn {
  client: OpenpiClient | null;
  /** Requests sent since this env's episode_start. */
  requests: number;
  seed: number;
}

export interface WsPolicyOptions {
  /** --seed: the base of the per-request seeds. */
  seed: number;
  log?: (line: string) => void;
}

export class WsChunkPolicy implements ChunkPolicy {
  readonly describe: string;
  readonly historySize = 1;
  readonly resolution: number;
  /** The training step the server's metadata names (rdt-libero serve: `checkpoint_step`), for the reports. */
  readonly checkpointStep: number | null;
  /** Connections re-opened after a drop, a timeout or a busy server. */
  reconnects = 0;
  private readonly format: 'libero' | 'native';
  private readonly metaHorizon: number | null;
  private lastHorizon: number | null = null;
  private readonly takesSeed: boolean;
  private readonly envs = new Map<number, EnvConn>();
  private closed = false;

  private constructor(readonly url: string, private spare: OpenpiClient | null, private readonly opts: WsPolicyOptions) {
    const m = spare!.metadata;
    if (m.format !== undefined && m.format !== 'libero' && m.format !== 'native')
      throw new EvalError(`${url}: the server takes observations in format ${JSON.stringify(m.format).slice(0, 80)}; rdt-libero eval sends 'libero' (openpi's LIBERO client) or 'native' (rdt-libero serve --format native)`);
    this.format = m.format === 'native' ? 'native' : 'libero';
    const h = m.action_horizon;
    this.metaHorizon = typeof h === 'number' && Number.isInteger(h) && h >= 1 ? h : null;
    this.checkpointStep = typeof m.checkpoint_step === 'number' && Number.isInteger(m.checkpoint_step) ? m.checkpoint_step : null;
    const keys = m.observation_keys as { optional?: unknown } | undefined;
    this.takesSeed = Array.isArray(keys?.optional) && keys.optional.includes('seed');
    if (this.format === 'native') {
      const img = m.image as { height?: unknown; width?: unknown } | undefined;
      if (typeof img?.height !== 'number' || img.height !== img.width || img.height < 8)
        throw new EvalError(`${url}: the server takes the native format but its metadata has no square 'image' size (${JSON.stringify(img)}); LIBERO renders square cameras`);
      this.resolution = img.height;
    } else this.resolution = OPENPI_RENDER;
    // Names the policy, not the address, so a resume against the same server moved to another port is accepted.
    const who = typeof m.policy === 'string' ? `${typeof m.server === 'string' ? m.server : 'server'} policy '${m.policy}'` : url;
    this.describe = `openpi remote ${who} (format ${this.format}, action horizon ${this.metaHorizon ?? 'per reply'}${this.takesSeed ? ', seeded requests' : ''})`;
  }

  /** Connect and read the metadata; a server that cannot be reached is an EvalError naming the address. */
  static async open(url: string, opts: WsPolicyOptions): Promise<WsChunkPolicy> {
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

  async startEpisode(env: number, spec: { seed: number }): Promise<void> {
    const s = this.env(env);
    s.requests = 0;
    s.seed = spec.seed;
    const ack = await this.exchange(env, (c) => c.episodeStart());
    if (ack.__ack__ !== undefined && ack.__ack__ !== 'episode_start')
      throw new EvalError(`${this.url}: episode_start was answered ${JSON.stringify(ack).slice(0, 200)}`);
  }

  predictChunks(inputs: readonly PolicyInput[], envs?: readonly number[]): Promise<ActionChunk[]> {
    return Promise.all(inputs.map((input, i) => this.one(envs?.[i] ?? i, input)));
  }

  private async one(env: number, input: PolicyInput): Promise<ActionChunk> {
    const frame = input.history[input.history.length - 1];
    if (!frame) throw new EvalError('internal: a remote policy request without a current frame');
    const obs = this.format === 'native' ? nativeRequest(frame, this.resolution, input.instruction) : liberoRequest(frame, this.resolution, input.instruction);
    const s = this.env(env);
    if (this.takesSeed) obs.seed = (s.seed + s.requests) % SEED_MOD;
    s.requests++;
    const reply = await this.exchange(env, (c) => c.infer(obs));
    return this.chunkOf(reply);
  }

  private chunkOf(reply: Record<string, unknown>): ActionChunk {
    const a = reply.actions;
    const bad = (what: string) => new EvalError(`${this.url}: the reply's 'actions' ${what}; expected a float array (H, 7) of LIBERO commands`);
    if (!isNdArray(a)) throw bad(`is ${a === undefined ? 'missing' : 'not an array'} (reply keys: ${Object.keys(reply).join(', ')})`);
    const na = a as NdArray;
    if (!/^<f[48]$/.test(na.dtype) || na.shape.length !== 2 || na.shape[1] !== 7 || na.shape[0] < 1) throw bad(`is ${na.dtype} [${na.shape.join(', ')}]`);
    const H = na.shape[0];
    if (this.metaHorizon !== null && H !== this.metaHorizon) throw bad(`has ${H} rows but the server's metadata says action_horizon ${this.metaHorizon}`);
    const rows = Float64Array.from(ndNumbers(na));
    if (!rows.every(Number.isFinite)) throw bad('holds NaN or infinity');
    this.lastHorizon = H;
    return {
      length: H,
      // Decoded by the server against the pose in the request: executed as sent, whatever the pose is now.
      action: (k: number, _measured: RobotObs) => {
        if (!(k >= 0 && k < H)) throw new EvalError(`internal: action ${k} of a ${H}-step remote chunk`);
        return rows.slice(k * 7, k * 7 + 7);
      },
    };
  }

  private env(env: number): EnvConn {
    let s = this.envs.get(env);
    if (!s) {
      // The connection that read the metadata serves the first env.
      s = { client: this.spare, requests: 0, seed: this.opts.seed };
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
        s.client ??= await this.reconnect();
        return await call(s.client);
      } catch (e) {
        const c = s.client;
        s.client = null;
        void c?.close();
        if (e instanceof EvalError) throw e;
        const why = (e as Error).message.split('\n')[0];
        if (!(e instanceof ServeError)) throw new EvalError(`${this.url}: ${why}`);
        if (!retryable(e))
          throw new EvalError(`remote policy ${this.url} answered ${e.kind}: ${why.replace(/^server: /, '')}; the evaluation stops (episodes already recorded are kept)`);
        if (attempt >= MAX_RECONNECTS)
          throw new EvalError(`remote policy ${this.url}: ${why} (${e.kind}), still after ${MAX_RECONNECTS} reconnect attempts; ` +
            'the episodes already recorded are kept: restart the server and re-run the same command to resume');
        this.reconnects++;
        this.opts.log?.(`eval: remote policy ${this.url}: ${why} (${e.kind}); reconnecting (attempt ${attempt + 1} of ${MAX_RECONNECTS})`);
        await new Promise((r) => setTimeout(r, BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]));
      }
    }
  }

  /** A new connection whose metadata must still describe the same policy. */
  private async reconnect(): Promise<OpenpiClient> {
    const c = await OpenpiClient.connect(this.url, { timeoutMs: REQUEST_TIMEOUT_MS });
    const m = c.metadata;
    const h = typeof m.action_horizon === 'number' ? m.action_horizon : null;
    if ((m.format === 'native' ? 'native' : 'libero') !== this.format || h !== this.metaHorizon) {
      await c.close();
      throw new EvalError(`${this.url}: after a reconnect the server describes another policy (format ${String(m.format)}, action horizon ${h}); ` +
        `it served format ${this.format}, action horizon ${this.metaHorizon} before: results of two policies must not mix`);
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
function retryable(e: ServeError): boolean {
  if (e.kind === 'ServerBusy' || e.kind === 'TooManyConnections' || e.kind === 'Timeout') return true;
  return e.kind === 'ProtocolError' && /^(connection closed|cannot connect)/.test(e.message);
}
