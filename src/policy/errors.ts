// The policy layer's error: what is wrong with a policy folder or an observation, naming the file and field,
// and what to pass or run instead.
import { RdtError } from '../util/errors.js';

export class PolicyError extends RdtError {
  override name = 'PolicyError';
}
