// The engine layer's error type: what was wrong (op, shape, device, file) and what to do. Its own file so the
// addon loader (native.ts) can throw it before Tensor exists.
import { RdtError } from '../util/errors.js';

export class EngineError extends RdtError {
  override name = 'EngineError';
}
