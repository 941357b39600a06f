// Ctrl-C (SIGINT) and a scheduler's pre-emption notice (SIGTERM) end a run cleanly: the first one asks the loop
// to finish the optimizer step it is in, save a complete checkpoint at that step and return; a second one stops
// at once (the last complete checkpoint stays usable, as after kill -9). Handlers run between the loop's awaits,
// so a step is never cut in half.
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
export type StopSignal = (typeof SIGNALS)[number];
const CODE: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

export class StopSignals {
  #requested: StopSignal | null = null;
  readonly #handlers = new Map<StopSignal, () => void>();

  constructor(say: (s: string) => void) {
    for (const sig of SIGNALS) {
      const h = () => {
        if (this.#requested) {
          process.stderr.write(`\n${sig} again: stopping now, without a checkpoint at this step (the last complete checkpoint is kept)\n`);
          process.exit(CODE[sig]);
        }
        this.#requested = sig;
        say(`\n${sig}: finishing this step and saving a checkpoint (${sig === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} again to stop at once)`);
      };
      this.#handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  /** The signal received, or null. */
  get requested(): StopSignal | null {
    return this.#requested;
  }

  /** Exit code of a run stopped by this signal (128 + signal number, as shells report it). */
  static exitCode(sig: StopSignal): number {
    return CODE[sig];
  }

  dispose(): void {
    for (const [sig, h] of this.#handlers) process.off(sig, h);
    this.#handlers.clear();
  }
}
