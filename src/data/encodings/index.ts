// The action-encoding registry. A new encoding is one file plus one line here.
import type { ActionEncoding } from './types.js';
import { eefVelocity } from './eef_velocity.js';
import { eefTargetPose } from './eef_target_pose.js';
import { rawDelta } from './raw_delta.js';

export * from './types.js';

export const ENCODINGS: Readonly<Record<string, ActionEncoding>> = Object.freeze({
  eef_velocity: eefVelocity,
  eef_target_pose: eefTargetPose,
  raw_delta: rawDelta,
});

export type EncodingName = keyof typeof ENCODINGS & string;

export function getEncoding(name: string): ActionEncoding {
  const e = ENCODINGS[name];
  if (!e) throw new Error(`unknown action encoding '${name}' (known: ${Object.keys(ENCODINGS).join(', ')})`);
  return e;
}
