// `rdt-libero serve`: serve a policy folder over openpi's websocket protocol. Parses flags and starts
// src/serve/server.ts; runs until SIGINT/SIGTERM.
import { OpenpiError } from '../openpi/errors.js';
import { FORMATS } from '../openpi/formats.js';
import { PolicyServer, SERVE_DEFAULTS } from '../serve/server.js';
import { VERIFY_LEVELS, type VerifyLevel } from '../util/checksums.js';
import { UsageError } from '../util/errors.js';
import { helpPointer, oneOf, parseCommandArgs, positiveInt } from './args.js';

const D = SERVE_DEFAULTS;
const USAGE = `usage: rdt-libero serve --checkpoint DIR [options]

Serves a policy folder (checkpoint-N/, checkpoint-N/ema/, final/, a lora-merge output) over openpi's websocket
protocol: a metadata frame on connect, msgpack requests and replies with openpi's numpy encoding, GET /healthz,
a text error frame then close 1011 on a failed request. openpi's LIBERO example client connects unchanged.
Each reply holds 'actions' (H, 7) float64 in LIBERO's action space, 'policy_timing', 'server_timing' and 'seed'.

options:
  --checkpoint DIR          the policy folder (config.json + model.safetensors + policy.json)
  --host H                  address to listen on (default ${D.host}; 0.0.0.0 for every interface)
  --port N                  port (default ${D.port}; 0 picks a free one, printed at start)
  --format F                observation format: libero (default: openpi's LIBERO client, 224x224 images rotated
                            180 degrees, 8-D state) or native (the simulator's own keys at the checkpoint's resolution)
  --action-horizon N        actions per reply (default: the policy's whole chunk)
  --seed N                  seed of the per-request sampling seeds (default: random); a request's own 'seed' key wins
  --max-batch N             requests per model call (default ${D.maxBatch}; 1 turns batching off)
  --max-queue N             requests waiting for the model at most (default ${D.maxQueue}; more get ServerBusy)
  --max-connections N       clients at once (default ${D.maxConnections}; more get TooManyConnections)
  --max-frame-bytes N       largest request frame (default ${D.maxFrameBytes}; larger get FrameTooLarge)
  --request-timeout-ms N    a request not answered in this time gets Timeout (default ${D.requestTimeoutMs})
  --max-unread-bytes N      a client leaving more reply bytes unread is dropped (default ${D.maxUnreadBytes})
  --metrics FILE            append one JSON line of traffic metrics every 10 s with traffic (requests/s, batch,
                            p50/p99 latency, errors, RSS); the same line goes to stderr either way
  --device D                cpu (default), cuda, cuda:N
  --dtype D                 float32 (default) or bfloat16
  --threads N               libtorch intra-op threads for the model (default: libtorch's choice); on a CPU shared
                            with other work, 1 is often fastest
  --verify LEVEL            weights checksum check: quick (default), full, none

If the policy thread dies, the requests in flight get InferenceFailed, /healthz answers 503 and the server
stops with exit code 1 (it is not restarted in place): run it under a supervisor that restarts it.

History: the server keeps no state per client. A policy that looks at H > 1 frames gets them from the native
format's 'history' key (the H-1 previous frames, one env step apart as in training); the libero format carries
one frame per request (openpi's LIBERO client sends one per replan), so the older slots stay empty, as at an
episode's first step in training. The metadata's history_inputs says which; its exec_horizon is policy.json's.
`;

export async function serve(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    command: 'serve', usage: USAGE, required: ['checkpoint'],
    options: {
      checkpoint: { type: 'string' }, host: { type: 'string', default: D.host }, port: { type: 'string', default: String(D.port) },
      format: { type: 'string', default: D.format }, 'action-horizon': { type: 'string' }, seed: { type: 'string' },
      'max-batch': { type: 'string', default: String(D.maxBatch) }, 'max-queue': { type: 'string', default: String(D.maxQueue) },
      'max-connections': { type: 'string', default: String(D.maxConnections) }, 'max-frame-bytes': { type: 'string', default: String(D.maxFrameBytes) },
      'request-timeout-ms': { type: 'string', default: String(D.requestTimeoutMs) }, 'max-unread-bytes': { type: 'string', default: String(D.maxUnreadBytes) },
      metrics: { type: 'string' }, device: { type: 'string', default: 'cpu' }, dtype: { type: 'string', default: 'float32' }, threads: { type: 'string' }, verify: { type: 'string', default: 'quick' },
    },
  }, args);
  if (!parsed) return 0;
  const v = parsed.values;
  const int = (flag: string, s: string) => positiveInt(flag, s, 'serve');
  const port = Number(v.port);
  if (!/^\d+$/.test(v.port) || port > 65535) throw new UsageError(`--port must be an integer in 0..65535, got '${v.port}'; ${helpPointer('serve')}`);
  let seed: number | undefined;
  if (v.seed !== undefined) {
    seed = Number(v.seed);
    if (!/^\d+$/.test(v.seed) || seed > 2 ** 32 - 1) throw new UsageError(`--seed must be an integer in 0..4294967295, got '${v.seed}'; ${helpPointer('serve')}`);
  }
  const dtype = oneOf('dtype', v.dtype, ['float32', 'bfloat16'] as const, 'serve');
  const verify = oneOf('verify', v.verify, VERIFY_LEVELS as readonly VerifyLevel[], 'serve');
  const server = await PolicyServer.start({
    checkpoint: v.checkpoint!, host: v.host, port, format: oneOf('format', v.format, FORMATS, 'serve'),
    actionHorizon: v['action-horizon'] !== undefined ? int('action-horizon', v['action-horizon']) : undefined, seed,
    maxBatch: int('max-batch', v['max-batch']), maxQueue: int('max-queue', v['max-queue']), maxConnections: int('max-connections', v['max-connections']),
    maxFrameBytes: int('max-frame-bytes', v['max-frame-bytes']), requestTimeoutMs: int('request-timeout-ms', v['request-timeout-ms']),
    maxUnreadBytes: int('max-unread-bytes', v['max-unread-bytes']),
    load: { dtype, device: v.device, verify }, metricsPath: v.metrics, threads: v.threads === undefined ? undefined : int('threads', v.threads),
  });
  const m = server.metadata;
  process.stdout.write(`serving ${v.checkpoint} on ${server.url} (format ${m.format}, action horizon ${m.action_horizon}, history ${m.history}); GET /healthz; Ctrl-C stops\n`);
  await serveUntilStopped(server);
  return 0;
}

/**
 * Serve until SIGINT/SIGTERM, then close. If the policy thread dies first, close and throw: the server is not
 * restarted in place (src/serve/server.ts says why); exit 1 lets a supervisor restart it.
 */
export async function serveUntilStopped(server: PolicyServer): Promise<void> {
  let stop!: () => void;
  const signalled = new Promise<null>((resolve) => (stop = () => resolve(null)));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const died = await Promise.race([signalled, server.failed]);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.stdout.write(`stopping: ${JSON.stringify(server.stats)}\n`);
  await server.close();
  if (died) throw new OpenpiError('InferenceFailed', `${died.message}; the server stopped: start it again (or let a supervisor restart it), and report the log above if it recurs`);
}
