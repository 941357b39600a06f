// The encoders layer's one error type: what was wrong, in which file / key / instruction, and what to do.
import { RdtError } from '../util/errors.js';

export class EncoderError extends RdtError {
  override name = 'EncoderError';
}

/** A short quote of a user text for an error message (long instructions are cut in the middle). */
export function quote(text: string, max = 80): string {
  const s = JSON.stringify(text);
  return s.length <= max ? s : `${s.slice(0, max - 20)}...${s.slice(-16)} (${text.length} characters)`;
}
