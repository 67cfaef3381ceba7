import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { AdaptError } from './adapt-error.js';

/**
 * `--replay` as absolute sources (folders of images, .txt lists of image paths, or images), each checked to
 * exist; an empty spec is no replay. Label files are not named here: each image's is found beside it (images/ → labels/). Throws AdaptError 'ADAPT_REPLAY_NOT_FOUND' naming the path that is
 * missing or is neither a folder, a .txt list nor a file.
 * @example
 * replaySources('package/replay/images,extra.txt'); // ['/abs/package/replay/images', '/abs/extra.txt']
 */
export function replaySources(spec: string): string[] {
  const sources = spec.split(',').map((s) => s.trim()).filter(Boolean).map((s) => resolve(s));
  for (const s of sources) {
    if (!existsSync(s)) throw new AdaptError('ADAPT_REPLAY_NOT_FOUND', `--replay: ${s} does not exist (give a folder of images of the original domain, a .txt list of image paths, or several joined by commas)`);
    const st = statSync(s);
    if (!st.isDirectory() && !st.isFile()) throw new AdaptError('ADAPT_REPLAY_NOT_FOUND', `--replay: ${s} is neither a folder nor a file`);
    if (st.isFile() && extname(s).toLowerCase() === '.yaml') {
      throw new AdaptError('ADAPT_REPLAY_NOT_FOUND', `--replay: ${s} is a YAML file; give its images folder (e.g. images/train) or a .txt list: each image's labels are found beside it (images/ → labels/)`);
    }
  }
  return sources;
}

/**
 * Which replay images a job uses: all of them when `max` is 0 or not below their count, else the `max`
 * whose sha256(seed, 'replay', content hash) ranks lowest. Like the hold-out split the choice depends on the
 * images' bytes and the seed only (not on names or listing order); byte-identical copies rank together,
 * and at most one of them is taken, since a second copy adds nothing.
 * @returns one flag per hash, true for an image used
 * @example
 * const used = replayChoice(images.map((i) => i.sha256), 200, 0);
 */
export function replayChoice(contentHashes: readonly string[], max: number, seed: number): boolean[] {
  if (!Number.isInteger(max) || max < 0) throw new RangeError(`max: expected an integer ≥ 0, got ${String(max)}`);
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`seed: expected an integer ≥ 0, got ${String(seed)}`);
  const ranked = contentHashes
    .map((h, i) => ({ i, h, rank: createHash('sha256').update(`${seed}\0replay\0${h}`).digest('hex') }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : a.i - b.i));
  const used = new Array<boolean>(contentHashes.length).fill(false);
  const seen = new Set<string>();
  for (const r of ranked) {
    if (max > 0 && seen.size >= max) break;
    if (seen.has(r.h)) continue;
    seen.add(r.h);
    used[r.i] = true;
  }
  return used;
}
