#!/usr/bin/env node
// The `rdt-libero` command. Subcommands parse their arguments and call into the layers; no logic here.

const USAGE = `usage: rdt-libero <command> [options]

commands:
  demo        fine-tune the tiny RDT on a synthetic suite with DEMO encoders, on CPU (what \`npm start\` runs)
  train       fine-tune RDT on LIBERO data: rdt-libero train --config run.yaml [key=value ...] (--help lists every key)
  lora-merge  fold LoRA adapters into the base weights: rdt-libero lora-merge --checkpoint DIR --out DIR
  doctor      report libtorch, threads, BLAS and devices
  predict     run predictAction on encoded conditions from a safetensors file (rdt-libero predict --help)
  encode      run the official T5 / SigLIP encoders on texts or images (rdt-libero encode --help)
  data        inspect LIBERO data, write statistics, generate synthetic suites (rdt-libero data --help)
`;

const commands: Record<string, (args: string[]) => Promise<number> | number> = {
  // Each command is imported when used, so `data` works without the native addon built.
  demo: async (args) => (await import('./demo.js')).demo(args),
  train: async (args) => (await import('./train.js')).trainCommand(args),
  'lora-merge': async (args) => (await import('./lora_merge.js')).loraMerge(args),
  doctor: async () => (await import('./doctor.js')).doctor(),
  data: async (args) => (await import('./data.js')).data(args),
  predict: async (args) => (await import('./predict.js')).predict(args),
  encode: async (args) => (await import('./encode.js')).encode(args),
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    const near = Object.keys(commands).find((c) => c.startsWith(cmd.slice(0, 2)));
    process.stderr.write(`rdt-libero: unknown command '${cmd}'${near ? ` (did you mean '${near}'?)` : ''}\n\n${USAGE}`);
    return 2;
  }
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`rdt-libero: ${err.message}\n`);
    process.exit(1);
  },
);
