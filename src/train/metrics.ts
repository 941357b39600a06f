// Where training numbers go: a JSONL file (one object per line, machine-readable), TensorBoard
// event files, and a one-line progress display with step, loss, LR, samples/s and ETA.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { TensorBoardWriter } from './tensorboard.js';

export interface MetricSink {
  log(step: number, values: Record<string, number | string>): void;
  close(): void;
}

export class JsonlSink implements MetricSink {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }
  log(step: number, values: Record<string, number | string>): void {
    appendFileSync(this.path, JSON.stringify({ step, time: new Date().toISOString(), ...values }) + '\n');
  }
  close(): void {}
}

export class TensorBoardSink implements MetricSink {
  readonly writer: TensorBoardWriter;
  /** startStep: the first step to be logged (resumed runs: checkpoint step + 1; see TensorBoardWriter). */
  constructor(logDir: string, startStep = 0) {
    this.writer = new TensorBoardWriter(logDir, { startStep });
  }
  log(step: number, values: Record<string, number | string>): void {
    const nums: Record<string, number> = {};
    for (const [k, v] of Object.entries(values)) if (typeof v === 'number') nums[k] = v;
    this.writer.scalars(step, nums);
  }
  close(): void {
    this.writer.close();
  }
}

export class Metrics {
  constructor(readonly sinks: MetricSink[]) {}
  log(step: number, values: Record<string, number | string>): void {
    for (const s of this.sinks) s.log(step, values);
  }
  close(): void {
    for (const s of this.sinks) s.close();
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** A progress line: redrawn in place on a terminal, printed every `every` updates otherwise (CI logs). */
export class Progress {
  readonly #tty = process.stderr.isTTY;
  readonly #quiet: boolean;
  readonly #start = performance.now();
  #last = 0;
  constructor(readonly total: number, readonly label = 'train', readonly startStep = 0, quiet = false) {
    this.#quiet = quiet;
  }

  update(step: number, fields: Record<string, string | number>): void {
    const elapsed = (performance.now() - this.#start) / 1000;
    const done = step - this.startStep;
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = (this.total - step) / Math.max(rate, 1e-9);
    const pct = ((100 * step) / this.total).toFixed(1);
    const parts = Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`);
    if (this.#quiet) return;
    const line = `${this.label} ${step}/${this.total} (${pct}%) ${parts.join(' | ')} | ETA ${formatDuration(eta)}`;
    if (this.#tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (step === this.total || performance.now() - this.#last > 5000 || step - this.startStep <= 1) {
      process.stderr.write(line + '\n');
      this.#last = performance.now();
    }
  }
  done(): void {
    if (this.#tty && !this.#quiet) process.stderr.write('\n');
  }
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 || a < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
}
