import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error.js';
import { checkDeclaredLength, tooLarge } from './body-limit.js';

/** Default largest JSON request body: 1 MiB, ample for a rollout spec over thousands of device ids. */
export const DEFAULT_JSON_LIMIT = 1024 * 1024;

/**
 * Read a request's JSON body, at most `limit` bytes (ApiError FLEET_TOO_LARGE beyond, checked against
 * Content-Length first and then as bytes arrive). An empty body is `undefined`; text that does not parse
 * is ApiError FLEET_BAD_REQUEST quoting the parser's complaint. The Content-Type is not checked, so that
 * `curl -d` works as it is.
 */
export async function readJsonBody(req: IncomingMessage, limit = DEFAULT_JSON_LIMIT): Promise<unknown> {
  checkDeclaredLength(req, limit, 'the JSON body');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit, 'the JSON body');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError('FLEET_BAD_REQUEST', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** The body as a JSON object, or ApiError FLEET_BAD_REQUEST saying what was expected. */
export function expectObject(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('FLEET_BAD_REQUEST', `the request body must be a JSON object (${what}), got ${body === undefined ? 'nothing' : Array.isArray(body) ? 'an array' : typeof body === 'object' ? 'null' : typeof body}`);
  }
  return body as Record<string, unknown>;
}
