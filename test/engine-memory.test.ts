// Memory: 1,000 optimizer steps of a small MLP (forward, backward, AdamW step, zeroGrad, each step
// in a scope) leave the live-tensor count exactly where it was after step 10, and RSS flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn, F, optim } from '../src/engine/index.js';

class Mlp extends nn.Module {
  net = new nn.Sequential(new nn.Linear(32, 64), new nn.GELU({ approximate: 'tanh' }), new nn.Linear(64, 64), new nn.SiLU(),
    new nn.LayerNorm(64), new nn.Linear(64, 8));
  override forward(x: torch.Tensor): torch.Tensor {
    return this.net.forward(x);
  }
}

test('1,000 training steps hold live tensors constant and RSS flat', () => {
  // One intra-op thread: these ops are tiny, and on a shared 2-core machine OpenMP's spinning
  // makes a 2 ms step take 15 ms. Lifetimes do not depend on the thread count.
  const threads = torch.getNumThreads();
  torch.setNumThreads(1);
  torch.manualSeed(0);
  const before = torch.liveTensors();
  const model = new Mlp();
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
  const gen = new torch.Generator(1);
  let liveAt10 = -1;
  let rssAt100 = 0;
  let firstLoss = 0;
  let lastLoss = 0;
  const target = torch.scope(() => torch.randn([16, 8], { generator: new torch.Generator(2) }).keep());
  const x = torch.scope(() => torch.randn([16, 32], { generator: new torch.Generator(3) }).keep());
  for (let step = 1; step <= 1000; step++) {
    const loss = torch.scope(() => {
      const noise = torch.randn([16, 32], { generator: gen }).mul(0.01);
      const l = F.mseLoss(model.forward(x.add(noise)), target);
      l.backward();
      optim.clipGradNorm_(model.parameters(), 1.0);
      opt.step();
      opt.zeroGrad();
      return l.item();
    });
    if (step === 1) firstLoss = loss;
    lastLoss = loss;
    if (step === 10) liveAt10 = torch.liveTensors();
    if (step === 100) {
      global.gc?.();
      rssAt100 = process.memoryUsage().rss;
    }
  }
  const liveAt1000 = torch.liveTensors();
  global.gc?.();
  const rssGrowthMB = (process.memoryUsage().rss - rssAt100) / 2 ** 20;
  assert.equal(liveAt1000, liveAt10, `live tensors after step 1000 (${liveAt1000}) equal those after step 10 (${liveAt10})`);
  // Parameters + AdamW moments (2 per parameter) + x + target: nothing else survives a step.
  assert.equal(liveAt1000 - before, 3 * model.parameters().length + 2);
  assert.ok(rssGrowthMB < 16, `RSS grew ${rssGrowthMB.toFixed(1)} MB between step 100 and step 1000`);
  assert.ok(lastLoss < firstLoss, `training reduces the loss (${firstLoss} -> ${lastLoss})`);
  assert.equal(torch.tensorCounters().gcFinalized, 0, 'no tensor was left to the garbage collector');
  opt.dispose();
  model.dispose();
  x.dispose();
  target.dispose();
  assert.equal(torch.liveTensors(), before);
  torch.setNumThreads(threads);
});
