// Every command parses its arguments here, with node:util parseArgs in strict mode, so they behave alike:
// `--help`/`-h` prints that command's usage and exits 0; an unknown flag, a missing value, a stray
// positional or a missing required flag is a UsageError (exit 2, one line naming it, "did you mean" where
// a known flag is close, and a pointer to --help).
import { parseArgs } from 'node:util';
import { UsageError } from '../util/errors.js';
import { didYouMean } from '../util/did-you-mean.js';

type OptionSpec = { type: 'string'; short?: string; default?: string } | { type: 'string'; multiple: true } | { type: 'boolean'; short?: string };

/** Parsed values: booleans are always present (false when absent), strings when given or defaulted. */
export type ArgValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] | undefined : O[K] extends { default: string } ? string : string | undefined;
};

export interface CommandArgs<O extends Record<string, OptionSpec>> {
  /** The command as typed, for messages and the --help pointer: 'demo', 'data stats'. */
  command: string;
  /** Printed to stdout on --help. A function when it is costly to build. */
  usage: string | (() => string);
  options: O;
  /** Names of the positional arguments, in order, e.g. ['<root>']; every one is required. Default: none. */
  positionals?: readonly string[];
  /** String options that must be given. */
  required?: readonly (keyof O & string)[];
}

export interface Parsed<O extends Record<string, OptionSpec>> {
  values: ArgValues<O>;
  positionals: string[];
}

const HELP = new Set(['--help', '-h']);

/** The pointer every usage error ends with. */
export function helpPointer(command: string): string {
  return `rdt-libero ${command} --help lists the options`;
}

/**
 * Parse `args` for one command. Returns null after printing the usage when --help/-h is among the arguments
 * (before any `--`), whatever else is there; throws UsageError for anything it does not accept.
 */
export function parseCommandArgs<O extends Record<string, OptionSpec>>(spec: CommandArgs<O>, args: readonly string[]): Parsed<O> | null {
  const end = args.indexOf('--');
  if ((end < 0 ? args : args.slice(0, end)).some((a) => HELP.has(a))) {
    process.stdout.write(typeof spec.usage === 'function' ? spec.usage() : spec.usage);
    return null;
  }
  const wanted = spec.positionals ?? [];
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: spec.options, strict: true, allowPositionals: wanted.length > 0 });
  } catch (e) {
    throw new UsageError(`${argErrorText(e, spec.options)}; ${helpPointer(spec.command)}`);
  }
  const positionals = parsed.positionals;
  if (positionals.length < wanted.length)
    throw new UsageError(`missing ${wanted.slice(positionals.length).join(' ')}: usage rdt-libero ${spec.command} ${wanted.join(' ')} [options]; ${helpPointer(spec.command)}`);
  if (positionals.length > wanted.length)
    throw new UsageError(`unexpected argument '${positionals[wanted.length]}' (rdt-libero ${spec.command} takes ${wanted.length ? wanted.join(' ') : 'no positional arguments'}); ${helpPointer(spec.command)}`);
  const values = { ...parsed.values } as Record<string, string | boolean | undefined>;
  for (const [name, o] of Object.entries(spec.options)) if (o.type === 'boolean') values[name] ??= false;
  const missing = (spec.required ?? []).filter((k) => values[k] === undefined || values[k] === '');
  if (missing.length)
    throw new UsageError(`--${missing[0]} is required${missing.length > 1 ? ` (also missing: ${missing.slice(1).map((k) => `--${k}`).join(', ')})` : ''}; ${helpPointer(spec.command)}`);
  return { values: values as ArgValues<O>, positionals };
}

/** parseArgs' error as one line of ours: the offending flag, and the nearest known one for a misspelling. */
function argErrorText(e: unknown, options: Record<string, OptionSpec>): string {
  const err = e as { code?: string; message?: string };
  const msg = String(err.message ?? e);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'([^']+)'/.exec(msg)?.[1] ?? msg;
    const near = didYouMean(flag.replace(/^-+/, ''), Object.keys(options));
    return `unknown option '${flag}'${near ? ` (did you mean '--${near}'?)` : ''}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = /'(?:-\w, )?(--?[\w-]+)/.exec(msg)?.[1];
    if (/does not take an argument/.test(msg)) return `${flag} is a switch and takes no value`;
    return `${flag} needs a value${/ambiguous/.test(msg) ? ` (one starting with '-' is written ${flag}=-VALUE)` : ''}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${/'[^']*'/.exec(msg)?.[0] ?? ''} (this command takes no positional arguments)`;
  return msg.split('\n')[0];
}

/** A positive integer flag value, or a UsageError naming the flag. */
export function positiveInt(flag: string, v: string, command: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--${flag} must be a positive integer, got '${v}'; ${helpPointer(command)}`);
  return n;
}

/** One of `choices`, or a UsageError naming the flag, the choices and the nearest one. */
export function oneOf<C extends string>(flag: string, v: string, choices: readonly C[], command: string): C {
  if ((choices as readonly string[]).includes(v)) return v as C;
  const near = didYouMean(v, choices);
  throw new UsageError(`--${flag} must be one of ${choices.join(', ')}, got '${v}'${near ? ` (did you mean '${near}'?)` : ''}; ${helpPointer(command)}`);
}
