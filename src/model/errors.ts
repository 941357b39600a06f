// The model layer's error type: every message says what was wrong and where (file, key, shape).
export class ModelError extends Error {
  override name = 'ModelError';
}
