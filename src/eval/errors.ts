// The evaluation layer's errors. EvalError: what was wrong with an evaluation (a sidecar's reply, a results file,
// a policy that failed), where, and what to do. EpisodeInterrupted: the episode cannot go on as it started (the
// simulator process died, the remote policy's connection was re-opened mid-episode); the run retries it from its
// initial state (counted), every other error ends the run.
import { RdtError } from '../util/errors.js';

export class EvalError extends RdtError {
  override name = 'EvalError';
}

/** The episode must be run again from its initial state (bounded by --max-retries, counted in its record). */
export class EpisodeInterrupted extends EvalError {
  override name = 'EpisodeInterrupted';
}

/** The simulator process died (or was killed as hung) mid-request; the supervisor restarts it. */
export class SidecarCrash extends EpisodeInterrupted {
  override name = 'SidecarCrash';
}

/** A remote policy's connection was re-opened mid-episode: whatever the server held for the episode is gone. */
export class PolicyReconnected extends EpisodeInterrupted {
  override name = 'PolicyReconnected';
}

/** The environment itself raised in a reset or step (the sidecar's `env` error reply): a failed episode, by default. */
export class SimEnvError extends EvalError {
  override name = 'SimEnvError';
}

/** The simulator install cannot run (missing package, render back-end): the sidecar's message and its fix. */
export class SimSetupError extends EvalError {
  override name = 'SimSetupError';
}

/** SIGINT/SIGTERM: the run stopped taking episodes; the recorded ones are kept. */
export class EvalInterrupted extends EvalError {
  override name = 'EvalInterrupted';
}
