// The demo's error: what failed (recording, training, an evaluation run) and what to do.
import { RdtError } from '../util/errors.js';

export class DemoError extends RdtError {
  override name = 'DemoError';
}
