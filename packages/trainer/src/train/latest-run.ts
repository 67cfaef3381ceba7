import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WeightsError } from '../errors.js';

/** The most recently written `last.kdw` below `dir` (ultralytics' get_latest_run), for a bare `--resume`. */
export function latestCheckpoint(dir: string): string {
  let best: { file: string; mtime: number } | undefined;
  const walk = (d: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory() && depth < 6) walk(p, depth + 1);
      else if (n === 'last.kdw' && (!best || st.mtimeMs > best.mtime)) best = { file: p, mtime: st.mtimeMs };
    }
  };
  walk(dir, 0);
  if (!best) throw new WeightsError(`--resume: no last.kdw found below ${dir} (give the run folder or checkpoint)`);
  return best.file;
}
