// Shared by the benches that time us against PyTorch: a persistent Python child process that answers one
// JSON line per stdin line (so the two engines can be timed call by call, interleaved), and the paired-round
// summary (per-round ratios, min, median) every such bench prints.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchRoot = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
})();

export interface TorchChild {
  /** The child's first line ({"ready": ...} or {"skipped": ...}). */
  first: Record<string, unknown>;
  /** Send one command line; resolves with the child's JSON answer. */
  ask<T = Record<string, unknown>>(cmd: string): Promise<T>;
  /** Send a timing command; resolves with the milliseconds the child measured for it. */
  time(cmd: string): Promise<number>;
  stop(): void;
}

/** Start `python3 bench/<script> <json args>` and wait for its first line. A child that dies fails with its last stderr line. */
export async function startTorchChild(script: string, args: object): Promise<TorchChild> {
  // The reference runs with the default C allocator whatever ours is set to (MALLOC_* tunables, RDT_CPU_ALLOCATOR),
  // so an allocator setting under test changes our side only.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_') && k !== 'RDT_CPU_ALLOCATOR'));
  const py = spawn(process.env.PYTHON ?? 'python3', [join(benchRoot, 'bench', script), JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stderr = '';
  py.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await lines.next();
    if (r.done) {
      await new Promise((res) => (py.exitCode === null ? py.once('exit', res) : res(null)));
      throw new Error(`bench/${script} exited: ${stderr.trim().split('\n').pop() ?? 'no message'}`);
    }
    const v = JSON.parse(r.value);
    if (typeof v.error === 'string') throw new Error(`bench/${script}: ${v.error}`);
    return v;
  };
  const first = await next();
  const ask = async <T>(cmd: string) => { py.stdin.write(`${cmd}\n`); return (await next()) as T; };
  return { first, ask, time: async (cmd) => (await ask<{ ms: number }>(cmd)).ms, stop: () => py.stdin.end() };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** Time a synchronous call in milliseconds. */
export function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export interface Paired {
  oursMs: number[];
  torchMs: number[];
  /** ours / PyTorch per round: <= 1 means we were at least as fast in that round. */
  ratios: number[];
}

/**
 * `rounds` paired rounds after `warmup` unrecorded ones: each round times ours and PyTorch once, who goes first
 * alternating, so a machine that gets busier or quieter slows both alike. `log` gets one line per round.
 */
export async function pairedRounds(o: { rounds: number; warmup: number; ours: () => number; torch: () => Promise<number>; log?: (line: string) => void; label: string }): Promise<Paired> {
  const res: Paired = { oursMs: [], torchMs: [], ratios: [] };
  for (let r = 0; r < o.warmup + o.rounds; r++) {
    let a: number, b: number;
    if (r % 2 === 0) { a = o.ours(); b = await o.torch(); } else { b = await o.torch(); a = o.ours(); }
    if (r < o.warmup) { o.log?.(`  ${o.label} warm-up: ours ${a.toFixed(0)} ms, PyTorch ${b.toFixed(0)} ms`); continue; }
    res.oursMs.push(a);
    res.torchMs.push(b);
    res.ratios.push(a / b);
    o.log?.(`  ${o.label} round ${r - o.warmup + 1}/${o.rounds}: ours ${a.toFixed(0)} ms, PyTorch ${b.toFixed(0)} ms, ratio ${(a / b).toFixed(3)}`);
  }
  return res;
}

/** The JSON summary of paired rounds. */
export function summary(p: Paired): Record<string, unknown> {
  return {
    ours_ms_median: round(median(p.oursMs), 1), torch_ms_median: round(median(p.torchMs), 1),
    ratio_per_round: p.ratios.map((x) => round(x)), ratio_min: round(Math.min(...p.ratios)), ratio_median: round(median(p.ratios)),
  };
}
