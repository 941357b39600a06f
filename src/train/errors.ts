// The training layer's errors: TrainError for a run that cannot go on (what failed, at which step or in which
// file, and what to do), ConfigError for a bad key or value in run.yaml or on the command line (exit code 2).
import { RdtError, UsageError } from '../util/errors.js';

export class TrainError extends RdtError {
  override name = 'TrainError';
}

export class ConfigError extends UsageError {
  override name = 'ConfigError';
}
