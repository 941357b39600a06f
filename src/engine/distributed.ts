// torch.distributed for rdt-libero: a process group over PyTorch's own c10d engine (TCPStore rendezvous,
// Gloo on CPU, NCCL on CUDA builds) and the blocking collectives data-parallel training needs. Collectives
// work in place on contiguous tensors, like torch.distributed's. Every call is bounded by the group's
// timeout: a rank that died or stopped answering ends in a named error, never a hang.
import { N, type GroupHandle, type Handle, type ReducerHandle, type ReducerStep } from './native.js';
import { EngineError } from './errors.js';
import type { Tensor } from './tensor.js';

export type { ReducerStep } from './native.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'max' | 'min' | 'product';

/** Any failure of a process group: rendezvous, a collective, a lost peer. */
export class DistributedError extends EngineError {
  override name = 'DistributedError';
}
/** A collective or the rendezvous did not complete within the group's timeout. */
export class DistributedTimeoutError extends DistributedError {
  override name = 'DistributedTimeoutError';
}
/** Another rank closed its connections (it exited or crashed) in the middle of a collective. */
export class PeerLostError extends DistributedError {
  override name = 'PeerLostError';
}

/** Where this process sits in the job, as torchrun (and the built-in launcher) describe it. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  /** torchrun's agent already hosts the TCPStore (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a client. */
  agentStore: boolean;
}

function envInt(env: NodeJS.ProcessEnv, key: string, min: number): number {
  const raw = env[key];
  const v = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(v) || v < min)
    throw new DistributedError(`environment variable ${key}=${JSON.stringify(raw ?? '')} must be an integer >= ${min} ` +
      '(torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; set all of them or none)');
  return v;
}

/**
 * The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), or null when WORLD_SIZE
 * is not set (a plain single-process run). A partial or malformed set is refused by name.
 */
export function envFromTorchrun(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined) return null;
  const worldSize = envInt(env, 'WORLD_SIZE', 1);
  const rank = envInt(env, 'RANK', 0);
  if (rank >= worldSize) throw new DistributedError(`RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  const localRank = env.LOCAL_RANK === undefined ? rank : envInt(env, 'LOCAL_RANK', 0);
  const masterAddr = env.MASTER_ADDR?.trim();
  if (!masterAddr && worldSize > 1) throw new DistributedError('MASTER_ADDR is not set (the host of rank 0, e.g. 127.0.0.1)');
  const masterPort = worldSize > 1 ? envInt(env, 'MASTER_PORT', 1) : 29500;
  if (masterPort > 65535) throw new DistributedError(`MASTER_PORT=${masterPort} is not a TCP port (1..65535)`);
  return {
    rank, worldSize, localRank, masterAddr: masterAddr || '127.0.0.1', masterPort,
    agentStore: env.TORCHELASTIC_USE_AGENT_STORE === 'True',
  };
}

/** The backends this build of the addon can create: 'gloo' always on CPU libtorch, 'nccl' on CUDA builds with NCCL. */
export function availableBackends(): Backend[] {
  return N.distBackends() as Backend[];
}

// c10d's messages for the two failures a user must tell apart; anything else stays a DistributedError.
const TIMEOUT = /timed out|timeout/i;
// NCCL reports a dead peer as 'remote process exited or there was a network error' (ncclRemoteError).
const PEER_LOST = /connection closed by peer|connection reset|broken pipe|read error|connection refused|EOF|remote process exited/i;

function classify(where: string, e: unknown, timeoutMs: number): DistributedError {
  const raw = e instanceof Error ? e.message : String(e);
  const first = raw.split('\n').find((l) => l.trim() !== '') ?? raw;
  if (TIMEOUT.test(raw))
    return new DistributedTimeoutError(`${where}: no answer from the other ranks within ${timeoutMs} ms (${first.trim()}). ` +
      'A rank has stopped or is far behind: see the other ranks\' output; raise dist_timeout_s if a step legitimately takes longer.');
  if (PEER_LOST.test(raw))
    return new PeerLostError(`${where}: another rank closed its connection (${first.trim()}). ` +
      'It exited or crashed: see its output for the cause.');
  return new DistributedError(`${where}: ${first.trim()}`);
}

function handles(ts: Tensor | readonly Tensor[], what: string): Handle[] {
  const list = Array.isArray(ts) ? (ts as readonly Tensor[]) : [ts as Tensor];
  for (const t of list)
    if (!t.isContiguous()) throw new DistributedError(`${what}: collectives work in place on contiguous tensors; call .contiguous() first`);
  return list.map((t) => t.h);
}

/**
 * One process's membership in a job: its rank, the world size and the collectives (torch.distributed's default group).
 * Keep the group referenced for as long as the job runs (or call destroy()): a group the GC collects closes its
 * connections, and the other ranks then see this one as lost.
 */
export class ProcessGroup {
  private g: GroupHandle | null;
  constructor(
    g: GroupHandle,
    readonly rank: number,
    readonly worldSize: number,
    readonly backend: Backend,
    readonly timeoutMs: number,
  ) {
    this.g = g;
  }

  /** Run `f` on the native group; a c10d failure comes back as a named DistributedError. */
  call<T>(what: string, f: (g: GroupHandle) => T): T {
    if (!this.g) throw new DistributedError(`${what}: the process group was destroyed`);
    try {
      return f(this.g);
    } catch (e) {
      if (e instanceof DistributedError) throw e;
      throw classify(`${what} on rank ${this.rank} of ${this.worldSize} (${this.backend})`, e, this.timeoutMs);
    }
  }

  /** all_reduce, in place, on each tensor; all are in flight before the first is waited for. */
  allReduce(ts: Tensor | readonly Tensor[], op: ReduceOp = 'sum'): void {
    const hs = handles(ts, 'all_reduce');
    this.call('all_reduce', (g) => N.distAllReduce(g, hs, op));
  }
  /** broadcast from `src`, in place. */
  broadcast(ts: Tensor | readonly Tensor[], src = 0): void {
    if (!Number.isInteger(src) || src < 0 || src >= this.worldSize)
      throw new DistributedError(`broadcast: source rank ${src} is outside world size ${this.worldSize}`);
    const hs = handles(ts, 'broadcast');
    this.call('broadcast', (g) => N.distBroadcast(g, hs, src));
  }
  /** all_gather_into_tensor: output (worldSize x input's elements) receives every rank's input in rank order. */
  allGather(output: Tensor, input: Tensor): void {
    const [o] = handles(output, 'all_gather');
    const [i] = handles(input, 'all_gather');
    this.call('all_gather', (g) => N.distAllGather(g, o, i));
  }
  /** reduce_scatter_tensor: output receives this rank's slice of the reduction of every rank's input. */
  reduceScatter(output: Tensor, input: Tensor, op: ReduceOp = 'sum'): void {
    const [o] = handles(output, 'reduce_scatter');
    const [i] = handles(input, 'reduce_scatter');
    this.call('reduce_scatter', (g) => N.distReduceScatter(g, o, i, op));
  }
  barrier(): void {
    this.call('barrier', (g) => N.distBarrier(g));
  }
  /** A reducer of `params`' gradients during backward (see GradReducer). */
  gradReducer(params: readonly Tensor[], opts: GradReducerOptions = {}): GradReducer {
    return new GradReducer(this, params, opts);
  }
  /** destroy_process_group: closes the connections. Further calls are refused. */
  destroy(): void {
    if (!this.g) return;
    const g = this.g;
    this.g = null;
    N.distDestroy(g);
  }
}

export interface InitOptions {
  backend?: Backend;
  /** Per-collective and rendezvous timeout; torch's default is 30 minutes, training uses dist_timeout_s. */
  timeoutMs?: number;
  /** Overrides the torchrun environment (tests, the built-in launcher). */
  env?: DistEnv;
}

/**
 * init_process_group(init_method='env://'): joins the group described by `opts.env` or the torchrun
 * environment. Rank 0 hosts the TCPStore unless torchrun's agent does. Blocks until every rank has joined.
 */
export function initProcessGroup(opts: InitOptions = {}): ProcessGroup {
  const env = opts.env ?? envFromTorchrun();
  if (!env) throw new DistributedError('initProcessGroup: WORLD_SIZE is not set; start the job with torchrun or `rdt-libero train --nproc_per_node N`');
  const backend = opts.backend ?? 'gloo';
  const have = availableBackends();
  if (!have.includes(backend))
    throw new DistributedError(`backend '${backend}' is not in this build (it has: ${have.join(', ') || 'none'}); ` +
      (backend === 'nccl' ? 'NCCL needs a CUDA libtorch with NCCL; use gloo on CPU' : 'rebuild against a torch with distributed support'));
  const timeoutMs = opts.timeoutMs ?? 30 * 60_000;
  const where = `joining the ${backend} group at ${env.masterAddr}:${env.masterPort} as rank ${env.rank} of ${env.worldSize}`;
  let g: GroupHandle;
  try {
    g = N.distInit(backend, env.masterAddr, env.masterPort, env.rank, env.worldSize, timeoutMs, env.rank === 0 && !env.agentStore);
  } catch (e) {
    throw classify(where, e, timeoutMs);
  }
  return new ProcessGroup(g, env.rank, env.worldSize, backend, timeoutMs);
}

export interface GradReducerOptions {
  /** Bytes of gradient per bucket (PyTorch DDP's bucket_cap_mb: 25 MB by default). */
  bucketBytes?: number;
  /** Launch each bucket as soon as its gradients are ready, during backward (default true); false: after backward. */
  overlap?: boolean;
  /**
   * ZeRO-2: the owner rank of each parameter. Each bucket's segment of an owner is reduced to that owner only, the
   * gradients leave every rank as soon as they are in a bucket, and only owners get theirs back, averaged.
   */
  owners?: readonly number[];
  /** At most this many buckets in flight (0: no bound; default 0, or 2 with owners: DeepSpeed's two reduce buffers). */
  maxInFlight?: number;
}

/**
 * Gradient averaging overlapped with backward, as PyTorch DDP's Reducer does it (native/grad_reducer.cc): a hook
 * on each parameter's gradient accumulator marks it ready; full buckets are reduced while backward goes on, in
 * bucket order on every rank. Per optimizer step: `backward(loss, sync)` for each micro-batch (sync only on the
 * last: earlier ones accumulate locally, DDP's no_sync), then `finalize()`, which reduces what is left, waits,
 * and leaves each reduced parameter's `.grad` holding the average over ranks. The bucket layout follows the order
 * in which gradients became ready in the first synchronised backward, then stays fixed; `layout()` shows it.
 * Keep it referenced while training, and destroy() it after (a collected reducer removes its hooks).
 */
export class GradReducer {
  private r: ReducerHandle | null;
  readonly bucketBytes: number;
  readonly overlap: boolean;
  constructor(
    readonly group: ProcessGroup,
    readonly params: readonly Tensor[],
    opts: GradReducerOptions = {},
  ) {
    this.bucketBytes = opts.bucketBytes ?? 25 * 2 ** 20;
    this.overlap = opts.overlap ?? true;
    if (!(this.bucketBytes >= 1)) throw new DistributedError(`gradient buckets of ${this.bucketBytes} bytes: give a positive size`);
    const maxInFlight = opts.maxInFlight ?? (opts.owners ? 2 : 0);
    const hs = params.map((p) => p.h);
    this.r = group.call('gradient reducer', (g) => N.reducerNew(g, hs, opts.owners ?? null, Math.round(this.bucketBytes), this.overlap, maxInFlight));
  }

  private handle(what: string): ReducerHandle {
    if (!this.r) throw new DistributedError(`${what}: the gradient reducer was destroyed`);
    return this.r;
  }

  /** loss.backward(), with this backward's gradients reduced (sync) or only accumulated locally (no_sync). */
  backward(loss: Tensor, sync: boolean): void {
    const r = this.handle('backward');
    N.reducerPrepare(r, sync);
    try {
      loss.backward();
    } catch (e) {
      // A bucket's collective that failed inside backward (a lost peer, a timeout) is named like any collective's
      // failure; anything else (out of memory, a bad op) stays what it was.
      const raw = e instanceof Error ? e.message : String(e);
      if (TIMEOUT.test(raw) || PEER_LOST.test(raw)) throw classify(`backward with gradient reduction on rank ${this.group.rank} of ${this.group.worldSize} (${this.group.backend})`, e, this.group.timeoutMs);
      throw e;
    }
  }

  /** Reduce the buckets not yet launched, wait for all, write the averaged gradients; see ReducerStep. */
  finalize(): ReducerStep {
    const r = this.handle('finalize');
    return this.group.call('gradient reduction', () => N.reducerFinalize(r));
  }

  /** The buckets, as indices into `params`, in launch order (empty until the first finalize). */
  layout(): number[][] {
    return N.reducerLayout(this.handle('layout'));
  }

  destroy(): void {
    if (!this.r) return;
    N.reducerDestroy(this.r);
    this.r = null;
  }
}
