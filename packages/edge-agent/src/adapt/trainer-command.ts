import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AdaptJobError } from './adapt-error.js';

/** The npm package that carries kd-trainer. */
export const TRAINER_PACKAGE = '@kd-edge/trainer';

/** How kd-trainer is started: the argument array before `adapt`, and where it came from. */
export interface TrainerCommand {
  /** Executable and its first arguments, e.g. `[node, …/dist/bin/kd-trainer.js]`. */
  argv: string[];
  /** `config`: adapt.trainer; `dist`: the package's build; `source`: a source checkout run through tsx. */
  from: 'config' | 'dist' | 'source';
}

/** Options of {@link locateTrainer}. */
export interface LocateTrainerOptions {
  /** `adapt.trainer` from the configuration: an argument array used as it is. */
  configured?: readonly string[];
  /** Where the search for the package starts (default this module's folder). */
  from?: string;
  /** The node binary (default the agent's own, process.execPath). */
  node?: string;
  /** Run the sources even where a build exists (a checkout whose build may be older than its sources: its tests). */
  preferSource?: boolean;
}

/**
 * The folder of the installed `@kd-edge/trainer` package, looked up like `import` would from `from`, or undefined.
 * The package's `exports` do not list package.json, so each node_modules folder on the lookup path is tried.
 */
export function trainerPackageDir(from: string): string | undefined {
  const require = createRequire(join(from, 'noop.js'));
  for (const base of require.resolve.paths(TRAINER_PACKAGE) ?? []) {
    const file = join(base, TRAINER_PACKAGE, 'package.json');
    if (!existsSync(file)) continue;
    try {
      if ((JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === TRAINER_PACKAGE) return dirname(file);
    } catch {
      // A damaged package.json: keep looking further up.
    }
  }
  return undefined;
}

/** `specifier` resolved as require() would from the folder `dir`, or undefined. */
function resolveFrom(dir: string, specifier: string): string | undefined {
  try {
    return createRequire(join(dir, 'package.json')).resolve(specifier);
  } catch {
    return undefined;
  }
}

/**
 * How to run kd-trainer: `adapt.trainer` when configured; else the installed `@kd-edge/trainer`'s build
 * (`dist/bin/kd-trainer.js`) under this node; else, in a source checkout where nothing is built (tests, CI),
 * `node --conditions=source --import <tsx> <pkg>/src/bin/kd-trainer.ts`. Throws AdaptJobError 'AGENT_ADAPT_UNAVAILABLE'
 * saying how to install it when none is found.
 * @example
 * const { argv } = locateTrainer({ configured: config.adapt.trainer });
 * spawn(argv[0], [...argv.slice(1), 'adapt', '--json', …]);
 */
export function locateTrainer(options: LocateTrainerOptions = {}): TrainerCommand {
  if (options.configured !== undefined && options.configured.length > 0) return { argv: [...options.configured], from: 'config' };
  const node = options.node ?? process.execPath;
  const dir = trainerPackageDir(options.from ?? dirname(fileURLToPath(import.meta.url)));
  if (dir !== undefined) {
    const dist = join(dir, 'dist', 'bin', 'kd-trainer.js');
    if (existsSync(dist) && options.preferSource !== true) return { argv: [node, dist], from: 'dist' };
    const src = join(dir, 'src', 'bin', 'kd-trainer.ts');
    // tsx by its absolute URL: `--import tsx` would be looked up from the child's working directory (the job's folder).
    const tsx = resolveFrom(dir, 'tsx');
    if (existsSync(src) && tsx !== undefined) return { argv: [node, '--conditions=source', '--import', pathToFileURL(tsx).href, src], from: 'source' };
  }
  throw new AdaptJobError(
    'AGENT_ADAPT_UNAVAILABLE',
    `kd-trainer is not installed beside this kd-agent (${TRAINER_PACKAGE} ${dir === undefined ? 'not found' : `at ${dir} has neither dist/bin/kd-trainer.js nor src/bin/kd-trainer.ts`}): ` +
      `install it with \`npm install ${TRAINER_PACKAGE}\` next to @kd-edge/edge-agent, or set adapt.trainer to the command that runs it (e.g. [/usr/bin/node, /opt/kd-trainer/dist/bin/kd-trainer.js])`,
  );
}
