// The evaluation's two kinds of randomness, each seeded so that an episode's outcome never depends on which
// worker ran it, what it was batched with, how many episodes ran before it in that process, or a resume:
//
// - The policy's sampling noise: request i of an episode (0-based: its i-th chunk request) is sampled with seed
//   requestSeed(--seed, suite, task, episode, i). A local policy draws that request's x_T alone from it (Policy
//   predict's `seeds`); a remote server that takes a per-request `seed` (its metadata lists the key, as rdt-libero
//   serve does) is sent it. openpi's servers take none and sample as they like.
//
// - The simulator's own randomness (LIBERO: env.reset() re-samples fixture placements that set_init_state does not
//   restore, libero-facts.md 4.1, openvla#342):
//     per-episode (rdt-libero's default): numpy and the env are seeded with --seed before every episode's reset,
//       so every episode starts from the same simulator state whatever ran before it. This is NOT what openpi
//       does; it is what makes shards, workers and resumes valid.
//     per-task (openpi's order): the env is seeded once when the task's env is made (openpi examples/libero/main.py
//       at 15a9616: np.random.seed(seed) once, then env.seed(seed) in _get_libero_env, once per task) and each
//       episode's reset draws on from there. With one worker and no interruption this is openpi's exact sequence;
//       after a resume or a crash retry, and on every worker of a parallel run, the harness first replays the
//       resets openpi would have made before the episode (reset only, no steps), so episode k of a task is still
//       preceded by exactly k resets of a freshly seeded env. That replay assumes env.step draws nothing from
//       numpy's global generator (robosuite 1.4's OSC controller and LIBERO's envs draw only in reset).

import { SEED_LIMIT } from '../policy/policy.js';

export const SEEDINGS = ['per-episode', 'per-task'] as const;
export type Seeding = (typeof SEEDINGS)[number];

/**
 * The sampling seed of request `request` of one episode: 32-bit FNV-1a of "seed/suite/task/episode/request",
 * modulo SEED_LIMIT = 2^31 (what servers and torch.Generator take). Written out so another tool can recompute it.
 */
export function requestSeed(seed: number, suite: string, task: number, episode: number, request: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(`${seed}/${suite}/${task}/${episode}/${request}`, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SEED_LIMIT;
}
