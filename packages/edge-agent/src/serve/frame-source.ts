import { extname } from 'node:path';

/** One image handed to the inference loop. */
export interface Frame {
  /** Where it came from: the source's name (a folder, a camera id). */
  source: string;
  /** Counts frames of this source from 0. */
  seq: number;
  /** The encoded image. */
  data: Buffer;
  /** The file it was read from, when it was one. */
  file?: string;
  /** Milliseconds since the epoch when the source took the frame. */
  receivedAt: number;
}

/** A stream of frames; iterate it with `for await`, and `close()` to end the iteration from outside. */
export interface FrameSource extends AsyncIterable<Frame> {
  /** The `source` of its frames. */
  readonly name: string;
  /** Stops the source; a pending or later `next()` ends the iteration. Safe to call twice. */
  close(): Promise<void>;
}

/** Image file extensions the file sources take (lower case, with the dot). */
export const FRAME_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.bmp', '.webp'];

/** Whether `file` is a visible image file with one of `extensions`; dot-files are usually partial writes. */
export function isFrameFile(file: string, extensions: readonly string[] = FRAME_EXTENSIONS): boolean {
  if (file.startsWith('.')) return false;
  return extensions.includes(extname(file).toLowerCase());
}

/** Checks an extension list option: non-empty, each starting with a dot; returns it lower-cased. */
export function checkExtensions(extensions: readonly string[] | undefined): readonly string[] {
  if (extensions === undefined) return FRAME_EXTENSIONS;
  if (!Array.isArray(extensions) || extensions.length === 0 || !extensions.every((e) => typeof e === 'string' && /^\.[^./\\]+$/.test(e))) {
    throw new RangeError(`extensions must be a non-empty list like ['.jpg', '.png'], got ${JSON.stringify(extensions)}`);
  }
  return extensions.map((e) => e.toLowerCase());
}

/** A promise with its resolver, cancellable from outside (Node 20.9 has no Promise.withResolvers). */
export interface Waiter {
  promise: Promise<void>;
  wake: () => void;
}

/** A fresh {@link Waiter}. */
export function waiter(): Waiter {
  let wake!: () => void;
  const promise = new Promise<void>((r) => (wake = r));
  return { promise, wake };
}
