// Leak checks that the garbage collector cannot blur: tensors created and not disposed, counting those the GC
// finalised. (liveTensors() alone drops when the GC happens to collect an earlier test's leftovers mid-run.)
import * as torch from '../../src/engine/index.js';

export function undisposed(): number {
  const c = torch.tensorCounters();
  return c.live + c.gcFinalized;
}
