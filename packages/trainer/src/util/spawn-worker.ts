import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Finds a worker entry file from the calling module's URL: the built `.js` (beside it, or under
 * `dist/<dir>/`), or the `.ts` source when running under vitest/tsx. `candidates` are relative
 * paths without extension, e.g. `['./loader-worker', './data/loader-worker']`.
 */
export function findWorkerEntry(from: string, candidates: readonly string[]): URL | null {
  for (const ext of ['.js', '.ts']) {
    for (const rel of candidates) {
      const url = new URL(`${rel}${ext}`, from);
      if (existsSync(fileURLToPath(url))) return url;
    }
  }
  return null;
}

/** Starts a worker thread on a `.js` entry, or on a `.ts` source through tsx's loader API. */
export function spawnWorker(entry: URL, workerData: unknown): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((api) => api.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(entry.href)}));`;
  return new Worker(code, { eval: true, workerData });
}
