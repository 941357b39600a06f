// The evaluation layer's errors. EvalError: what was wrong with an evaluation (a sidecar's reply, a results file,
// a policy that failed), where, and what to do. SidecarCrash: the simulator process died mid-request; the
// supervisor restarts it and retries the episode from its initial state (counted), every other error ends the run.
import { RdtError } from '../util/errors.js';

export class EvalError extends RdtError {
  override name = 'EvalError';
}

export class SidecarCrash extends EvalError {
  override name = 'SidecarCrash';
}

/** The simulator install cannot run (missing package, render back-end): the sidecar's message and its fix. */
export class SimSetupError extends EvalError {
  override name = 'SimSetupError';
}
