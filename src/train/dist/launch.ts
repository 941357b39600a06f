// The built-in launcher of `rdt-libero train --nproc_per_node N`: what torchrun does for this node. It
// starts one worker process per local rank with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and supervises them: rank 0's output passes through, the
// others' lines are prefixed with their rank; Ctrl-C / SIGTERM are forwarded to every worker (each finishes
// its step, rank 0 saves a checkpoint); and the first worker to fail stops the job: the others are
// terminated (then killed after a grace period) and the error names that rank and its last words.
// Workers run in their own process group, so a terminal's Ctrl-C reaches them once, through the launcher (a
// second SIGINT means "stop at once"); each watches the launcher (RDT_LAUNCHER_PID) and exits if it dies.
import { spawn, type ChildProcess } from 'node:child_process';
import { TrainError } from '../errors.js';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The worker command line: node and its arguments (each worker gets the same). */
  command: string;
  args: string[];
  /** Seconds the other workers get to exit after one failed, before they are killed. */
  graceSeconds?: number;
  /** Extra environment for every worker. */
  env?: Record<string, string>;
}

export interface LaunchResult {
  /** 0 when every worker exited 0; else the exit code to report. */
  code: number;
}

const TAIL_LINES = 12;

interface Worker {
  rank: number;
  proc: ChildProcess;
  tail: string[];
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
}

/** Copies a worker's output to ours line by line (whole lines, so ranks do not interleave mid-line) and keeps its last lines. */
function pipeLines(w: Worker, from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  let partial = '';
  from.setEncoding?.('utf8');
  from.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      to.write(prefix + l + '\n');
      if (l.trim()) w.tail.push(l);
    }
    if (w.tail.length > TAIL_LINES) w.tail.splice(0, w.tail.length - TAIL_LINES);
  });
  from.on('end', () => {
    if (partial) {
      to.write(prefix + partial + '\n');
      w.tail.push(partial);
    }
  });
}

function describeExit(w: Worker): string {
  const e = w.exit!;
  const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
  const last = w.tail.filter((l) => /error|Error|failed|refused|killed/.test(l)).pop() ?? w.tail[w.tail.length - 1];
  return `rank ${w.rank} ${how}${last ? `: ${last.trim()}` : ' (it printed nothing)'}`;
}

/** Check the launcher's numbers (one-line errors naming the flag). */
export function checkLaunchOptions(o: LaunchOptions): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new TrainError(`--${name} must be an integer >= ${min}, got ${v}`);
  };
  int('nproc_per_node', o.nprocPerNode, 1);
  int('nnodes', o.nnodes, 1);
  int('node_rank', o.nodeRank, 0);
  if (o.nodeRank >= o.nnodes) throw new TrainError(`--node_rank ${o.nodeRank} must be below --nnodes ${o.nnodes}`);
  int('master_port', o.masterPort, 1);
  if (o.masterPort > 65535) throw new TrainError(`--master_port ${o.masterPort} is not a TCP port (1..65535)`);
  if (!o.masterAddr) throw new TrainError('--master_addr is empty: give the host of node 0');
}

/** Start this node's workers and wait for them. Resolves when all have exited. */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  checkLaunchOptions(o);
  const world = o.nprocPerNode * o.nnodes;
  const workers: Worker[] = [];
  let firstFailure: Worker | null = null;
  let stopSignal: NodeJS.Signals | null = null;
  let killTimer: NodeJS.Timeout | null = null;

  const terminateOthers = () => {
    for (const w of workers)
      if (!w.exit) {
        w.proc.kill('SIGTERM');
        // A stopped worker (SIGSTOP, a debugger, a job-control stop) handles SIGTERM only once it runs again, as
        // systemd's stop sequence knows: continue it, so it fails by name instead of waiting for the kill.
        w.proc.kill('SIGCONT');
      }
    // A worker blocked in a collective or a long step gets a grace period, then is killed: never a hang.
    killTimer ??= setTimeout(() => {
      for (const w of workers) if (!w.exit) w.proc.kill('SIGKILL');
    }, (o.graceSeconds ?? 30) * 1000);
  };
  const forward = (sig: NodeJS.Signals) => () => {
    stopSignal = sig;
    for (const w of workers) if (!w.exit) w.proc.kill(sig);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  // Workers have their own process group: if the launcher itself ends, they must not outlive it.
  const onExit = () => {
    for (const w of workers) if (!w.exit) w.proc.kill('SIGKILL');
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('exit', onExit);

  try {
    const done = Array.from({ length: o.nprocPerNode }, (_, local) => {
      const rank = o.nodeRank * o.nprocPerNode + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env, ...o.env, RANK: String(rank), LOCAL_RANK: String(local), WORLD_SIZE: String(world), LOCAL_WORLD_SIZE: String(o.nprocPerNode),
        GROUP_RANK: String(o.nodeRank), MASTER_ADDR: o.masterAddr, MASTER_PORT: String(o.masterPort), RDT_LAUNCHER_PID: String(process.pid),
      };
      delete env.TORCHELASTIC_USE_AGENT_STORE; // rank 0 hosts the store here
      const proc = spawn(o.command, o.args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const w: Worker = { rank, proc, tail: [], exit: null };
      workers.push(w);
      const prefix = rank === 0 ? '' : `[rank ${rank}] `;
      pipeLines(w, proc.stdout!, process.stdout, prefix);
      pipeLines(w, proc.stderr!, process.stderr, prefix);
      return new Promise<void>((resolve) => {
        proc.on('error', (e) => {
          w.tail.push(`could not start ${o.command}: ${e.message}`);
          w.exit = { code: 127, signal: null };
          firstFailure ??= w;
          terminateOthers();
          resolve();
        });
        proc.on('close', (code, signal) => {
          w.exit ??= { code, signal };
          if ((code !== 0 || signal) && !firstFailure && !stopSignal) {
            firstFailure = w;
            terminateOthers();
          }
          resolve();
        });
      });
    });
    await Promise.all(done);
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('exit', onExit);
    if (killTimer) clearTimeout(killTimer);
  }
  const failed = firstFailure as Worker | null;
  if (failed) {
    const others = workers.filter((w) => w !== failed && w.exit && (w.exit.code !== 0 || w.exit.signal)).map((w) => w.rank);
    throw new TrainError(`the job stopped because ${describeExit(failed)}` +
      (others.length ? ` (then stopped: rank ${others.join(', ')})` : '') +
      '. Its full output is above; fix the cause and resume with --resume_from_checkpoint latest');
  }
  // Stopped by a signal: every worker saved and exited with the signal's code; report the same.
  const codes = workers.map((w) => w.exit?.code ?? 1);
  return { code: Math.max(...codes) };
}
