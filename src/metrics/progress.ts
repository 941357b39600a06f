// A one-line progress display for long work: step, the caller's fields (loss, LR, samples/s), ETA.
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
