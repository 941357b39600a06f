// The model layer's error type: every message says what was wrong and where (file, key, shape).
import { RdtError } from '../util/errors.js';
export class ModelError extends RdtError {
  override name = 'ModelError';
}
