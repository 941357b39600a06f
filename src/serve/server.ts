// A policy server speaking openpi's websocket protocol (libero-facts.md 4.4; src/openpi/serving/
// websocket_policy_server.py at openpi 15a9616):
//   - on connect, one binary frame: msgpack of the metadata map;
//   - then per request one binary frame msgpack(observation) -> one binary frame msgpack(reply), strictly in turn;
//     every frame is an observation (openpi hands every frame to policy.infer; there are no control messages);
//   - a failed request gets one TEXT frame "Kind: message" (a short named error, never a stack trace), then close
//     1011 (openpi sends its traceback there; its client raises on any text frame);
//   - GET /healthz answers 200 "OK\n" (503 once the policy thread is gone).
//
// If the policy thread dies (it catches every model error itself, so this means a bug or the thread being
// killed), the requests waiting for it get InferenceFailed, /healthz answers 503, and `failed` resolves: the
// server is not restarted in place (the same fault would likely recur, and a half-working server hides it);
// `rdt-libero serve` stops with exit code 1 and one line saying why, for a supervisor (systemd, Kubernetes, a
// shell loop) to restart it and for /healthz-based health checks to notice.
// The reply holds `actions` (H, 7) float64 in LIBERO's action space, `policy_timing` {infer_ms} and `server_timing`
// {infer_ms, prev_total_ms from the 2nd request on, queue_ms, batch_size}, and `seed`, the sampling seed used; in
// the native format also `chunk` (H, 128) float64, the raw unified vectors, for a client that decodes each step
// against the pose it measures before executing it (as rdt-libero's local evaluation does).
//
// History (policies that look at H > 1 frames): the server keeps no state per client. A native request carries the
// H-1 previous frames (formats.ts), one env step apart as in training. A libero request carries one frame, because
// openpi's LIBERO client sends one per replan and never says where an episode starts (its reset() sends nothing):
// keeping the previous request's frame would give the model a frame several env steps old, and the last frame of
// the previous episode at an episode's start, inputs it never saw in training. So the older slots stay empty, as at
// an episode's first step in training; the metadata's `history_inputs` says so.
//
// Seeds: a request's noise comes from its own seed (row drawn alone, Policy.predict's seeds), so its actions do not
// depend on what it is batched with (beyond float32 rounding): the request's `seed` key, else the next of the
// server's sequence (--seed, else random).
//
// Inference runs in the policy thread (src/policy/thread.ts) behind a bounded batching queue (src/policy/batcher.ts:
// whatever is queued when the model is free goes into one call); the event loop only decodes, validates and converts
// frames, so /healthz and other connections stay responsive.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomInt } from 'node:crypto';
import { basename, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { Rng } from '../data/rng.js';
import { type LoadPolicyOptions, type PolicyInput, SEED_LIMIT } from '../policy/index.js';
import { Batcher } from '../policy/batcher.js';
import { PolicyThread, type PolicyThreadError } from '../policy/thread.js';
import { decode, encode } from '../openpi/codec.js';
import { OpenpiError } from '../openpi/errors.js';
import { type FormatName, checkFormat, formatKeys, historyInputs, parseRequest } from '../openpi/formats.js';
import { TrafficReport } from './traffic_report.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';

/** One request for the model; its rows of the reply: (chunk, 7) actions, (chunk, 128) raw vectors, the call's own ms. */
type Job = { input: PolicyInput; seed: number };
type JobResult = { actions: Float64Array; raw: Float64Array; inferMs: number };

export interface ServeOptions {
  checkpoint: string;
  host: string;
  /** 0: any free port (see PolicyServer.url). */
  port: number;
  format: FormatName;
  /** Actions per reply (default: the policy's whole chunk). */
  actionHorizon?: number;
  /** Seeds the server's sequence of sampling seeds (default: random). */
  seed?: number;
  /** Requests per model call; 1 turns batching off. */
  maxBatch: number;
  /** Requests waiting for the model at most. */
  maxQueue: number;
  maxConnections: number;
  maxFrameBytes: number;
  requestTimeoutMs: number;
  /** Reply bytes a connection may leave unread before it is dropped (ClientNotReading). */
  maxUnreadBytes: number;
  load?: Pick<LoadPolicyOptions, 'dtype' | 'device' | 'verify'>;
  /** libtorch intra-op threads for the model (default: libtorch's choice). */
  threads?: number;
  /** Append one JSON line of traffic metrics per report here (traffic_report.ts). */
  metricsPath?: string;
  /** Report interval, ms (default 10 s); a report is written only when something happened. */
  reportEveryMs?: number;
  /** Server log lines (default: stderr). */
  log?: (line: string) => void;
}

export const SERVE_DEFAULTS = { host: '127.0.0.1', port: 8000, format: 'libero' as FormatName, maxBatch: 64, maxQueue: 256, maxConnections: 256, maxFrameBytes: 16 << 20, requestTimeoutMs: 30_000, maxUnreadBytes: 4 << 20 };

/** ws closes a connection itself when a frame is over maxPayload (code 1009); say why first, as a named error frame. */
function socketClass(maxFrameBytes: number, onRefused: () => void): typeof WebSocket {
  return class ServerSocket extends WebSocket {
    override close(code?: number, data?: string | Buffer): void {
      if (code === 1009 && this.readyState === WebSocket.OPEN) {
        onRefused();
        this.send(new OpenpiError('FrameTooLarge', `a frame over ${maxFrameBytes} bytes (--max-frame-bytes) was refused unread`).frameText);
        super.close(1011, 'FrameTooLarge');
        return;
      }
      super.close(code, data);
    }
  };
}

interface Connection {
  ws: WebSocket;
  busy: boolean;
  prevTotalMs: number | null;
  /** Drops the request in flight (disconnect, timeout). */
  cancel: (() => void) | null;
}

export class PolicyServer {
  private conns = new Set<Connection>();
  private seeds: () => number;
  readonly metadata: Record<string, unknown>;
  readonly horizon: number;
  private closing = false;
  private reportTimer: NodeJS.Timeout;
  private readonly traffic: TrafficReport;
  /** Resolves with the reason if the policy thread dies; the server then only refuses (see the top). */
  readonly failed: Promise<OpenpiError>;

  private constructor(
    private readonly opts: ServeOptions,
    private readonly worker: PolicyThread,
    private readonly batcher: Batcher<Job, JobResult>,
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    /** Failed requests by kind, for the log and tests. */
    readonly errors: Record<string, number>,
    private readonly log: (line: string) => void,
  ) {
    const info = worker.info;
    this.horizon = opts.actionHorizon ?? info.chunkSize;
    const rng = opts.seed !== undefined ? new Rng(opts.seed) : null;
    this.seeds = rng ? () => rng.int(SEED_LIMIT) : () => randomInt(SEED_LIMIT);
    const a = info.adapter;
    this.metadata = {
      server: 'rdt-libero',
      policy: basename(resolve(opts.checkpoint)),
      checkpoint_step: info.step,
      format: opts.format,
      observation_keys: formatKeys(opts.format),
      action_horizon: this.horizon,
      // What an evaluation should execute of each reply (policy.json action.exec_horizon; rdt-libero eval's default).
      ...(info.execHorizon !== null ? { exec_horizon: Math.min(info.execHorizon, this.horizon) } : {}),
      action_dim: 7,
      action_space: 'LIBERO OSC_POSE delta: [dx, dy, dz, rx, ry, rz] in [-1, 1], gripper -1 open / +1 close',
      chunk_size: info.chunkSize,
      history: info.historySize,
      history_inputs: historyInputs(opts.format, info.historySize),
      action_encoding: a.encoding,
      image: { height: a.imageHeight, width: a.imageWidth, orientation: a.orientation },
      max_frame_bytes: opts.maxFrameBytes,
    };
    this.failed = worker.died.then((e) => {
      if (e.thread) this.log(`policy thread: ${e.thread.stack}`);
      this.log(`policy thread died: ${e.message}; requests in flight got InferenceFailed, /healthz answers 503`);
      return new OpenpiError('InferenceFailed', e.message);
    });
    this.traffic = new TrafficReport(opts.metricsPath, log);
    this.reportTimer = setInterval(() => this.report(), opts.reportEveryMs ?? 10_000).unref();
    http.on('request', (req, res) => this.onHttp(req, res));
    wss.on('error', (e) => log(`server: ${e.message}`));
    wss.on('connection', (ws) => this.onConnection(ws));
  }

  /** Load the policy (in its thread), check the format against it, and listen. */
  static async start(opts: ServeOptions): Promise<PolicyServer> {
    const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
    if (opts.actionHorizon !== undefined && !(Number.isInteger(opts.actionHorizon) && opts.actionHorizon >= 1))
      throw new OpenpiError('ServerConfig', `action horizon ${opts.actionHorizon} is not a positive integer`);
    const worker = await PolicyThread.start({ dir: opts.checkpoint, load: opts.load ?? {}, threads: opts.threads });
    try {
      checkFormat(opts.format, worker.info.adapter);
      if (opts.actionHorizon !== undefined && opts.actionHorizon > worker.info.chunkSize)
        throw new OpenpiError('ServerConfig', `--action-horizon ${opts.actionHorizon} is longer than the policy's chunk of ${worker.info.chunkSize} actions`);
      const per = worker.info.chunkSize;
      const call = async (jobs: Job[]): Promise<JobResult[]> => {
        const r = await worker.predict(jobs.map((j) => j.input), jobs.map((j) => j.seed), true).catch((e: PolicyThreadError) => {
          if (!worker.alive || !e.thread || e.thread.ours) throw new OpenpiError('InferenceFailed', e.message);
          log(`inference failed: ${e.thread.stack}`);
          throw new OpenpiError('InferenceFailed', `the model call failed (${e.thread.name}; details in the server log)`);
        });
        return jobs.map((_, b) => ({ actions: r.actions!.slice(b * per * 7, (b + 1) * per * 7), raw: r.raw.slice(b * per * STATE_VEC_LEN, (b + 1) * per * STATE_VEC_LEN), inferMs: r.inferMs }));
      };
      const full = (n: number) => new OpenpiError('ServerBusy', `${n} requests are already queued (--max-queue ${opts.maxQueue}); retry later`);
      const batcher = new Batcher(call, { maxBatch: opts.maxBatch, maxQueue: opts.maxQueue, full });
      const http = createServer();
      const errors: Record<string, number> = {};
      const refused = () => void (errors.FrameTooLarge = (errors.FrameTooLarge ?? 0) + 1);
      await new Promise<void>((res, rej) => {
        http.once('error', (e: NodeJS.ErrnoException) => rej(new OpenpiError('ServerConfig', `cannot listen on ${opts.host}:${opts.port} (${e.code ?? e.message}); pick another --port or --host`)));
        http.listen(opts.port, opts.host, () => res());
      });
      // Made once listening (it re-emits the HTTP server's errors, a listen failure included).
      const wss = new WebSocketServer({ server: http, maxPayload: opts.maxFrameBytes, perMessageDeflate: false, WebSocket: socketClass(opts.maxFrameBytes, refused) });
      return new PolicyServer(opts, worker, batcher, http, wss, errors, log);
    } catch (e) {
      await worker.close();
      throw e;
    }
  }

  get url(): string {
    const a = this.http.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `ws://${host}:${a.port}`;
  }

  get stats() {
    return { connections: this.conns.size, queued: this.batcher.queued, ...this.batcher.counts, textEncodes: this.worker.textEncodes, errors: { ...this.errors } };
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'GET' && req.url === '/healthz') {
      const ok = this.worker.alive && !this.closing;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'OK\n' : 'inference unavailable\n');
    } else res.writeHead(426, { 'content-type': 'text/plain' }).end('this is a websocket policy server (openpi protocol); GET /healthz for health\n');
  }

  private onConnection(ws: WebSocket): void {
    ws.on('error', () => {}); // receive errors (oversized, bad frames) close the socket themselves; nothing to crash
    if (this.conns.size >= this.opts.maxConnections || this.closing) {
      this.count('TooManyConnections');
      ws.send(new OpenpiError('TooManyConnections', `${this.conns.size} clients are connected (--max-connections ${this.opts.maxConnections}); retry later`).frameText);
      ws.close(1013, 'TooManyConnections');
      return;
    }
    const c: Connection = { ws, busy: false, prevTotalMs: null, cancel: null };
    this.conns.add(c);
    ws.on('close', () => {
      this.conns.delete(c);
      c.cancel?.(); // a request in flight for a client that left: dropped from the queue or its result discarded
    });
    ws.on('message', (data, isBinary) => this.onFrame(c, data, isBinary).catch((e) => this.log(`connection handler failed: ${(e as Error)?.stack ?? e}`)));
    ws.send(encode(this.metadata));
  }

  private async onFrame(c: Connection, data: RawData, isBinary: boolean): Promise<void> {
    const start = performance.now();
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.ws.bufferedAmount > this.opts.maxUnreadBytes) {
      // It does not read what we send: an error frame would pile up too. Drop it and free its buffers.
      this.count('ClientNotReading');
      this.log(`dropped a client with ${c.ws.bufferedAmount} unread reply bytes (ClientNotReading)`);
      c.ws.terminate();
      return;
    }
    if (c.busy) return this.fail(c, new OpenpiError('ProtocolError', 'a request arrived before the reply to the previous one; send one request at a time'));
    if (!isBinary) return this.fail(c, new OpenpiError('ProtocolError', 'requests are msgpack in binary frames, not text'));
    c.busy = true;
    let timer: NodeJS.Timeout | null = null;
    try {
      const frame = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const req = parseRequest(this.opts.format, decode(frame), this.worker.info.adapter);
      const history = [...req.previous, req.frame];
      const seed = req.seed ?? this.seeds();
      const job = this.batcher.submit({ input: { history, instruction: req.prompt }, seed });
      c.cancel = job.cancel;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new OpenpiError('Timeout', `no reply within ${this.opts.requestTimeoutMs} ms (--request-timeout-ms); the server is overloaded or the model too slow`));
          job.cancel(); // after: the race has already taken the Timeout
        }, this.opts.requestTimeoutMs);
      });
      const { value: r, queueMs, batchSize } = await Promise.race([job.result, timeout]);
      if (c.ws.readyState !== WebSocket.OPEN) return;
      const actions = r.actions.subarray(0, this.horizon * 7);
      const serverTiming: Record<string, number> = { infer_ms: performance.now() - start };
      if (c.prevTotalMs !== null) serverTiming.prev_total_ms = c.prevTotalMs;
      serverTiming.queue_ms = queueMs;
      serverTiming.batch_size = batchSize;
      const reply = {
        actions: { dtype: '<f8', shape: [this.horizon, 7], data: actions },
        ...(this.opts.format === 'native' ? { chunk: { dtype: '<f8', shape: [this.horizon, STATE_VEC_LEN], data: r.raw.subarray(0, this.horizon * STATE_VEC_LEN) } } : {}),
        seed,
        policy_timing: { infer_ms: r.inferMs },
        server_timing: serverTiming,
      };
      c.busy = false;
      c.ws.send(encode(reply), () => {
        c.prevTotalMs = performance.now() - start;
        this.traffic.replied(c.prevTotalMs);
      });
    } catch (e) {
      this.fail(c, e);
    } finally {
      if (timer) clearTimeout(timer);
      c.cancel = null;
    }
  }

  /** A failed request: one named error frame, then close 1011. Anything not ours is logged, never sent. */
  private fail(c: Connection, e: unknown): void {
    c.busy = false;
    if (c.ws.readyState !== WebSocket.OPEN) return; // the client left (its request was cancelled): nothing to tell
    const err = e instanceof OpenpiError ? e : new OpenpiError('InferenceFailed', 'internal server error (details in the server log)');
    if (!(e instanceof OpenpiError)) this.log(`request failed: ${(e as Error)?.stack ?? String(e)}`);
    this.count(err.kind);
    c.ws.send(err.frameText);
    c.ws.close(1011, err.kind);
  }

  private count(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  private report(): void {
    this.traffic.tick({ connections: this.conns.size, queued: this.batcher.queued, ...this.batcher.counts, errors: this.errors });
  }

  /** Stop listening, close every connection (1001), stop the policy thread. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.reportTimer);
    this.report();
    for (const c of this.conns) c.ws.close(1001, 'server shutting down');
    await new Promise<void>((res) => this.wss.close(() => res()));
    this.http.closeAllConnections();
    await new Promise<void>((res) => this.http.close(() => res()));
    await this.worker.close();
  }
}
