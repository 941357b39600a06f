// The one error base of rdt-libero. Each layer has its own subclass (EngineError, DataError, ModelError,
// EncoderError, PolicyError, TrainError, ConfigError, ...), written so its message can be shown as is: what was
// wrong, where (file, key, demo, step, device) and what to do. The CLI maps them to exit codes with
// `instanceof RdtError`, never by name; anything that is not an RdtError is a bug and gets its stack on request.

export class RdtError extends Error {
  override name = 'RdtError';
  /** Process exit code when this error ends a command: 1 runtime error, 2 usage or config error. */
  get exitCode(): number {
    return 1;
  }
}

/** Usage and configuration errors: a bad flag, key or value; nothing ran. Exit code 2. */
export class UsageError extends RdtError {
  override name = 'UsageError';
  override get exitCode(): number {
    return 2;
  }
}
