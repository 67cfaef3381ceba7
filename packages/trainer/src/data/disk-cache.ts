import { open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { RgbImage } from './image.js';

/** Magic of a cached decoded image (`<image>.kdc`, ultralytics' `--cache disk` keeps `.npy` the same way). */
const MAGIC = 'KDC1';
/** magic, width, height, size, source bytes, source mtime (ms, float64). */
const HEADER = 4 + 4 * 4 + 8;

/** The cache file of an image. */
export function cachePath(image: string): string {
  return `${image}.kdc`;
}

/**
 * The decoded image `image` at long side `size` from its disk cache, or undefined when there is none or it
 * belongs to another size or another version of the image (size and mtime differ): then it is made again.
 */
export async function readCachedImage(image: string, size: number): Promise<RgbImage | undefined> {
  let fh;
  try {
    fh = await open(cachePath(image), 'r');
  } catch {
    return undefined;
  }
  try {
    const [st, own] = await Promise.all([stat(image), fh.stat()]);
    if (own.size < HEADER) return undefined;
    const buf = Buffer.alloc(own.size);
    await fh.read(buf, 0, own.size, 0);
    if (buf.toString('latin1', 0, 4) !== MAGIC) return undefined;
    const width = buf.readUInt32LE(4), height = buf.readUInt32LE(8), s = buf.readUInt32LE(12), bytes = buf.readUInt32LE(16);
    const mtime = buf.readDoubleLE(20);
    if (s !== size || bytes !== st.size % 2 ** 32 || mtime !== st.mtimeMs || own.size !== HEADER + width * height * 3) return undefined;
    return { data: new Uint8Array(buf.buffer, buf.byteOffset + HEADER, width * height * 3), width, height };
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * Writes the decoded image beside `image` (temporary file renamed into place, so readers never see half of
 * one). Returns false when the folder is not writable: caching is then skipped, never an error.
 */
export async function writeCachedImage(image: string, size: number, rgb: RgbImage): Promise<boolean> {
  const st = await stat(image);
  const head = Buffer.alloc(HEADER);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(rgb.width, 4);
  head.writeUInt32LE(rgb.height, 8);
  head.writeUInt32LE(size, 12);
  head.writeUInt32LE(st.size % 2 ** 32, 16);
  head.writeDoubleLE(st.mtimeMs, 20);
  const tmp = `${cachePath(image)}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, Buffer.concat([head, rgb.data]));
    await rename(tmp, cachePath(image));
    return true;
  } catch {
    await unlink(tmp).catch(() => undefined);
    return false;
  }
}
