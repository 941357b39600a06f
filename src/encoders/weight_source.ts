// Hands loaded checkpoint tensors to the modules that own them, as frozen parameters, so the weights
// are held once (no second copy as loadStateDict would make). Every missing, mis-shaped and
// unexpected key is collected and reported at the end in one line naming the folder.
import { cpuMemory, nn, zeros, type DType, type Device, type Tensor } from '../engine/index.js';
import { EncoderError } from './errors.js';

export class WeightSource {
  readonly #left: Map<string, Tensor>;
  readonly #missing: string[] = [];
  readonly #misShaped: string[] = [];

  constructor(readonly where: string, weights: Map<string, Tensor>, readonly dtype: DType, readonly device: Device) {
    this.#left = new Map(weights);
  }

  /** The tensor under key as a frozen Parameter of the given shape (a zero placeholder when absent or mis-shaped). */
  take(key: string, shape: number[]): nn.Parameter {
    const t = this.#left.get(key);
    this.#left.delete(key);
    if (!t) this.#missing.push(key);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      this.#misShaped.push(`${key} is [${t.shape}] in the weights, [${shape}] by config.json`);
      t.dispose();
    } else return new nn.Parameter(t, false);
    return new nn.Parameter(zeros(shape, { dtype: this.dtype, device: this.device }), false);
  }

  /** finish() for a model built from this source: on a mismatch the model is freed before the error goes up. */
  finishFor<M extends { dispose(): void }>(model: M): M {
    try {
      this.finish();
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** Throw one EncoderError listing every problem (after freeing what was not taken); else return. */
  finish(): void {
    const unexpected = [...this.#left.keys()];
    for (const t of this.#left.values()) t.dispose();
    this.#left.clear();
    // Loading freed its read and conversion buffers; their blocks fit nothing the encoder runs later.
    cpuMemory.emptyCache();
    const parts: string[] = [];
    const list = (what: string, xs: string[]) => {
      if (xs.length) parts.push(`${xs.length} ${what} (${xs.slice(0, 3).join('; ')}${xs.length > 3 ? '; ...' : ''})`);
    };
    list('mis-shaped', this.#misShaped);
    list('missing', this.#missing);
    list('unexpected', unexpected);
    if (parts.length)
      throw new EncoderError(`${this.where}: config.json does not match the weights: ${parts.join(', ')}; ` +
        'use the config.json that came with these weights');
  }
}
