// A per-process cache of instruction embeddings for inference. In evaluation and serving the instruction is constant
// per task, so the text encoder (T5-XXL: 4.8 B parameters) runs once per distinct instruction instead of on every
// model call, as RDT's own deployment encodes it once. Entries are keyed by the encoder's identity (policy.json
// encoders, plus the folders, dtype and device it runs with) and the text, so the policies of one process with the
// same encoder share them while loaded; the last one's dispose frees them. Each text is encoded alone and rows are
// zero-padded (padTokenRows), exactly as the official T5 encoder does live, so a cached batch is the live batch bit
// for bit. Bounded: the least recently used texts go first (a server is sent whatever prompts its clients like).
import type { Tensor } from '../engine/index.js';
import * as torch from '../engine/index.js';
import { padTokenRows } from '../encoders/official.js';
import type { TextEncoder } from '../encoders/types.js';

const MAX_TEXTS = 1024;
const caches = new Map<string, { rows: Map<string, Tensor>; users: number }>();

export class CachedTextEncoder implements TextEncoder {
  /** Texts this instance had to encode (cache misses). */
  calls = 0;
  readonly name: string;
  readonly isDemo: boolean;
  readonly tokenDim: number;
  readonly maxLength: number;
  private readonly rows: Map<string, Tensor>;
  private readonly release: () => void;

  constructor(readonly inner: TextEncoder, key: string) {
    ({ name: this.name, isDemo: this.isDemo, tokenDim: this.tokenDim, maxLength: this.maxLength } = inner);
    const c = caches.get(key) ?? caches.set(key, { rows: new Map(), users: 0 }).get(key)!;
    c.users++;
    this.rows = c.rows;
    this.release = () => {
      if (--c.users === 0) (c.rows.forEach((t) => t.dispose()), caches.delete(key));
    };
  }

  encode(instructions: string[]): { tokens: Tensor; mask: Tensor } {
    for (const text of new Set(instructions)) {
      let row = this.rows.get(text);
      if (row) this.rows.delete(text); // re-inserted below: the most recently used go last
      else {
        this.calls++;
        row = torch.scope(() => {
          const { tokens, mask } = this.inner.encode([text]);
          return tokens.select(0, 0).slice(0, 0, mask.sum().item()).contiguous();
        }).keep();
      }
      this.rows.set(text, row);
    }
    for (const [text, row] of this.rows) {
      if (this.rows.size <= MAX_TEXTS) break;
      row.dispose();
      this.rows.delete(text);
    }
    return padTokenRows(instructions.map((t) => this.rows.get(t)!));
  }

  /** Frees the encoder, and the cached rows when no other policy of the process uses them. */
  dispose(): void {
    this.inner.dispose();
    this.release();
  }
}
