#!/usr/bin/env node
// The `rdt-libero` command. Subcommands parse their arguments (src/cli/args.ts) and call into the layers;
// whatever they throw is reported here, once (src/cli/report.ts). Exit codes: 0 done, 1 runtime error,
// 2 usage or config error (UsageError and its subclasses).
import { didYouMean } from '../util/did-you-mean.js';
import { reportError } from './report.js';

const USAGE = `usage: rdt-libero <command> [options]   (rdt-libero <command> --help for its options)

commands:
  demo        train a tiny RDT on a scripted expert in the test simulator and measure closed-loop success, on CPU (\`npm start\`)
  train       fine-tune RDT on LIBERO data: rdt-libero train --config run.yaml [key=value ...] (--help lists every key)
  lora-merge  fold LoRA adapters into the base weights: rdt-libero lora-merge --checkpoint DIR --out DIR
  doctor      report libtorch, threads, BLAS and devices (--sim: check the LIBERO simulator install)
  predict     run predictAction on encoded conditions from a safetensors file
  encode      run the official T5 / SigLIP encoders on texts or images
  data        inspect LIBERO data, write statistics, generate synthetic suites
  eval        success rates in the LIBERO simulator: rdt-libero eval --policy DIR --suite S --out DIR
  serve       serve a policy folder over openpi's websocket protocol: rdt-libero serve --checkpoint DIR

exit codes: 0 done, 1 runtime error (data, model, training, engine), 2 usage or config error
set RDT_DEBUG=1 for the stack trace of a failure
`;

const commands: Record<string, (args: string[]) => Promise<number> | number> = {
  // Each command is imported when used, so `data` works without the native addon built.
  demo: async (args) => (await import('./demo.js')).demo(args),
  train: async (args) => (await import('./train.js')).trainCommand(args),
  'lora-merge': async (args) => (await import('./lora_merge.js')).loraMerge(args),
  doctor: async (args) => (await import('./doctor.js')).doctor(args),
  data: async (args) => (await import('./data.js')).data(args),
  predict: async (args) => (await import('./predict.js')).predict(args),
  encode: async (args) => (await import('./encode.js')).encode(args),
  eval: async (args) => (await import('./eval.js')).evalCommand(args),
  serve: async (args) => (await import('./serve.js')).serve(args),
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help') {
    (cmd ? process.stdout : process.stderr).write(USAGE);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    const near = didYouMean(cmd, Object.keys(commands));
    process.stderr.write(`rdt-libero: unknown command '${cmd}'${near ? ` (did you mean '${near}'?)` : ''}; rdt-libero --help lists the commands\n`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    return reportError(e, cmd);
  }
}

// process.exit, not exitCode: a data-loading worker or a logger child left open must not keep a finished
// command alive.
main(process.argv.slice(2)).then((code) => process.exit(code));
