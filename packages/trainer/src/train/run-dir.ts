import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** ultralytics increment_path: runs/train/exp, exp2, exp3… unless `existOk`. Creates the folder. */
export function incrementRunDir(project: string, name: string, existOk: boolean): string {
  let dir = join(project, name);
  if (!existOk) {
    for (let i = 2; existsSync(dir); i++) dir = join(project, `${name}${i}`);
  }
  mkdirSync(join(dir, 'weights'), { recursive: true });
  return dir;
}
