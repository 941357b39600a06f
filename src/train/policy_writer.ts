// The built-in model-folder writer: every model folder a run saves (checkpoint-N/, its ema/, final/) gets the
// policy.json that makes it self-describing (src/policy). The conventions are worked out once, before the first
// step, so a run whose data, encoders and model disagree stops at once instead of at its first checkpoint.
import { basename } from 'node:path';
import { policyConventions, writePolicyFile, type PolicyConventions } from '../policy/index.js';
import type { ModelFolderWriter, TrainContext } from './hooks.js';
import { TrainError } from './errors.js';

export class PolicyFolderWriter {
  #conventions: PolicyConventions | null = null;

  /** Derive and check the run's conventions (call once the data, model and encoders are built). */
  prepare(ctx: TrainContext): void {
    const { cfg, data, parts } = ctx;
    this.#conventions = policyConventions({
      adapter: data.dataset.cfg, stats: data.stats.libero, encoders: parts.encoders, rdt: parts.runner.config,
      run: basename(ctx.outputDir), baseModel: cfg.pretrained_model_name_or_path ?? cfg.model, lora: cfg.lora, execHorizon: cfg.exec_horizon,
      dataFormat: data.dataset.format,
    });
  }

  readonly write: ModelFolderWriter = (dir, info) => {
    if (!this.#conventions) throw new TrainError('internal: the policy writer was not prepared before the first save');
    const c = this.#conventions;
    writePolicyFile(dir, { ...c, origin: { ...(c.origin ?? { run: '', base_model: '' }), step: info.step, ema: info.kind === 'ema' } });
  };
}
