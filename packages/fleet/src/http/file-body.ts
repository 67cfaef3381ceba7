import { createWriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ApiError } from './api-error.js';
import { checkDeclaredLength, tooLarge } from './body-limit.js';

/** Default largest package upload: 2 GiB. */
export const DEFAULT_PACKAGE_LIMIT = 2 * 1024 ** 3;

/**
 * Stream a request body into a new file at `path` (created exclusively), at most `limit` bytes, so that
 * a package of gigabytes never sits in memory. Resolves to the number of bytes written. ApiError
 * FLEET_TOO_LARGE beyond the limit, FLEET_BAD_REQUEST for an empty body or one cut short by the client;
 * the caller removes the file.
 */
export async function writeBodyToFile(req: IncomingMessage, path: string, limit = DEFAULT_PACKAGE_LIMIT, what = 'the upload'): Promise<number> {
  checkDeclaredLength(req, limit, what);
  let size = 0;
  try {
    await pipeline(
      req,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          size += chunk.length;
          if (size > limit) throw tooLarge(limit, what);
          yield chunk;
        }
      },
      createWriteStream(path, { flags: 'wx' }),
    );
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (!req.complete) throw new ApiError('FLEET_BAD_REQUEST', `${what} ended before its last byte (the client went away?)`, { cause: err });
    throw err;
  }
  if (size === 0) throw new ApiError('FLEET_BAD_REQUEST', `${what} is empty`);
  return size;
}
