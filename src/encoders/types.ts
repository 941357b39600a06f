// What the trainer and the policy need from the frozen condition encoders. The official ones are
// T5-v1.1-XXL (language, 4096-d tokens) and SigLIP so400m (vision, 729 tokens of 1152-d per image).
import type { Tensor } from '../engine/index.js';

export interface TextEncoder {
  readonly name: string;
  /** True for stand-in encoders: their outputs mean nothing outside this project's demo and tests. */
  readonly isDemo: boolean;
  readonly tokenDim: number;
  readonly maxLength: number;
  /** Instructions -> tokens (B, L, tokenDim) float32 and mask (B, L) bool (true = real token). */
  encode(instructions: string[]): { tokens: Tensor; mask: Tensor };
  /** Free the encoder's weights. */
  dispose(): void;
}

export interface VisionEncoder {
  readonly name: string;
  readonly isDemo: boolean;
  readonly tokenDim: number;
  readonly tokensPerImage: number;
  /** Images uint8 (N, H, W, 3) packed in one array -> tokens (N, tokensPerImage, tokenDim) float32. */
  encode(images: Uint8Array, n: number, height: number, width: number): Tensor;
  dispose(): void;
}
