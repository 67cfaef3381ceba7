import { createHash } from 'node:crypto';

/**
 * Which frames are held out: each frame is ranked by sha256(seed, its content hash), and the
 * `round(n · share)` lowest are the hold-out (with any byte-identical copies of the last one). The split depends on the frames' bytes and the seed only,
 * not on their names, paths or listing order, so a job labelled again (after a crash) or a copy of the
 * frames elsewhere splits the same way; the hold-out has exactly its share, which a per-frame coin
 * could leave empty on a small set.
 * @returns one flag per key, true for a hold-out frame
 * @example
 * const held = holdoutSplit(frames.map((f) => f.sha256), 0.2, 0);
 */
export function holdoutSplit(contentHashes: readonly string[], share: number, seed: number): boolean[] {
  if (!(share >= 0 && share < 1)) throw new RangeError(`share: expected a number in [0, 1), got ${String(share)}`);
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`seed: expected an integer ≥ 0, got ${String(seed)}`);
  const ranked = contentHashes
    .map((h, i) => ({ i, rank: createHash('sha256').update(`${seed}\0${h}`).digest('hex') }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : a.i - b.i));
  const held = new Array<boolean>(contentHashes.length).fill(false);
  const count = Math.round(contentHashes.length * share);
  let taken = 0;
  for (let k = 0; k < ranked.length; k++) {
    // Copies of one frame rank together and stay on one side, so the hold-out never scores a frame trained on.
    const sameAsLast = k > 0 && ranked[k]!.rank === ranked[k - 1]!.rank && held[ranked[k - 1]!.i]!;
    if (taken >= count && !sameAsLast) break;
    held[ranked[k]!.i] = true;
    taken++;
  }
  return held;
}
