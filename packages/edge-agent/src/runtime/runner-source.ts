import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrtBuildError } from './trt-build-error.js';

const PACKAGE_NAME = '@kd-edge/edge-agent';
/** Where the runner's source lies inside the agent's package. */
export const RUNNER_SOURCE_SUBDIR = join('native', 'trt-runner');

/**
 * The folder of the native runner's source shipped with the agent (`<package>/native/trt-runner`), found by walking up
 * from this module to the agent's `package.json`: the same from `src/` (tests, tsx), `dist/` and a bundle chunk.
 * Throws AGENT_TRT_BUILD_SOURCE_NOT_FOUND naming where it looked.
 */
export async function locateRunnerSource(from: string = fileURLToPath(import.meta.url)): Promise<string> {
  let dir = dirname(from);
  for (;;) {
    if (isAgentPackage(dir)) {
      return checkRunnerSource(join(dir, RUNNER_SOURCE_SUBDIR), `the agent package at ${dir}`);
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new TrtBuildError('AGENT_TRT_BUILD_SOURCE_NOT_FOUND', `no ${PACKAGE_NAME} package.json above ${dirname(from)}, so no ${RUNNER_SOURCE_SUBDIR} to build; give the runner's source folder with --source`);
}

/** `source` if it holds the runner (`src/main.cpp` and the other `src/*.cpp`), else AGENT_TRT_BUILD_SOURCE_NOT_FOUND. */
export async function checkRunnerSource(source: string, origin = source): Promise<string> {
  const files = await runnerSourceFiles(source).catch(() => []);
  if (!files.some((f) => f.endsWith(join('src', 'main.cpp')))) {
    throw new TrtBuildError('AGENT_TRT_BUILD_SOURCE_NOT_FOUND', `${origin}: no runner source at ${join(source, 'src', 'main.cpp')} (the package was installed without native/trt-runner?)`);
  }
  return source;
}

/** The runner's translation units, `<source>/src/*.cpp`, sorted (what the Makefile's SRC lists). */
export async function runnerSourceFiles(source: string): Promise<string[]> {
  const names = await readdir(join(source, 'src'));
  return names.filter((n) => n.endsWith('.cpp')).sort().map((n) => join(source, 'src', n));
}

function isAgentPackage(dir: string): boolean {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return false;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false;
  }
}
