// The range of a sampling seed that crosses a boundary (an openpi request's `seed`, an eval episode's request
// seed): 0 .. SEED_MAX, a non-negative int32, which every server, torch.Generator and numpy accept alike.
export const SEED_MAX = 2 ** 31 - 1;

export const isSeed = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= SEED_MAX;
