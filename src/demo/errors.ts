// The demo's error: what failed (recording, training, an evaluation run) and what to do.
import type { StopSignal } from '../train/stop_signals.js';
import { RdtError } from '../util/errors.js';

export class DemoError extends RdtError {
  override name = 'DemoError';
}

/** The demo was stopped by SIGINT/SIGTERM while training (the trainer saved a checkpoint and returned). */
export class DemoStopped extends Error {
  constructor(readonly signal: StopSignal) {
    super(`stopped by ${signal} while training; the recorded demonstrations are kept: run the demo again to train afresh`);
  }
}
