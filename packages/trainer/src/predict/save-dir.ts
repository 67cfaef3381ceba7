import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * ultralytics `increment_path`: project/name, then name2, name3… for the first that does not exist,
 * or project/name itself when `existOk`. Creates nothing.
 * @example incrementPath('runs/predict', 'exp', false) // 'runs/predict/exp2' when exp exists
 */
export function incrementPath(project: string, name: string, existOk: boolean): string {
  let dir = join(project, name);
  if (!existOk) {
    for (let i = 2; existsSync(dir); i++) dir = join(project, `${name}${i}`);
  }
  return dir;
}
