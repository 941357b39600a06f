// The evaluation protocols (libero-facts.md 4.2). 'openpi' (default) is what every published LIBERO number since
// OpenVLA uses (openpi, OpenVLA, OpenVLA-OFT): 50 fixed initial states per task, index = episode; 10 wait steps of
// [0,0,0,0,0,0,-1] whose observations the policy does not see; per-suite max policy steps; success = the env's
// done flag. 'libero' is the official LIBERO lifelong evaluation: 20 episodes per task, init index k mod 50,
// 5 wait steps of zeros (gripper 0 = hold), 600 max steps.

export const SUITES: Readonly<Record<string, { tasks: number; maxSteps: number }>> = Object.freeze({
  libero_spatial: { tasks: 10, maxSteps: 220 },
  libero_object: { tasks: 10, maxSteps: 280 },
  libero_goal: { tasks: 10, maxSteps: 300 },
  libero_10: { tasks: 10, maxSteps: 520 },
  libero_90: { tasks: 90, maxSteps: 400 },
});

export interface EvalProtocol {
  name: 'openpi' | 'libero';
  episodesPerTask: number;
  waitSteps: number;
  waitAction: readonly number[];
  maxSteps: (suite: string) => number;
  /** The fixed initial state an episode starts from. */
  initIndex: (episode: number, numInitStates: number) => number;
  /** Default env seed, set before every episode's reset (openpi: 7). */
  seed: number;
}

export const PROTOCOLS: Readonly<Record<'openpi' | 'libero', EvalProtocol>> = Object.freeze({
  openpi: {
    name: 'openpi', episodesPerTask: 50, waitSteps: 10, waitAction: [0, 0, 0, 0, 0, 0, -1],
    maxSteps: (suite: string) => SUITES[suite].maxSteps,
    initIndex: (episode: number) => episode,
    seed: 7,
  },
  libero: {
    name: 'libero', episodesPerTask: 20, waitSteps: 5, waitAction: [0, 0, 0, 0, 0, 0, 0],
    maxSteps: () => 600,
    initIndex: (episode: number, n: number) => episode % n,
    seed: 7,
  },
});
