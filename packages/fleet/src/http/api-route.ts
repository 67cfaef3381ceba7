import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FleetContext } from '../server/fleet-context.js';
import type { RouteParams } from './router.js';

/** Limits and places the API handler works with, defaults filled in. */
export interface ApiLimits {
  /** Largest JSON body, bytes. */
  jsonLimit: number;
  /** Largest package upload, bytes. */
  packageLimit: number;
  /** Where uploads are spooled before the registry verifies them. */
  tempDir: string;
}

/** One request as a route handler sees it. */
export interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  params: RouteParams;
  query: URLSearchParams;
  ctx: FleetContext;
  limits: ApiLimits;
}

/** What a route answers: a status and a JSON body, or `undefined` when it answered by itself (the event stream). */
export type ApiResult = { status: number; body: unknown } | undefined;

/** A route handler; errors it throws are mapped to JSON error responses by the API handler. */
export type ApiRouteHandler = (r: ApiRequest) => ApiResult | Promise<ApiResult>;

/** A 200 with `body`. */
export function ok(body: unknown): ApiResult {
  return { status: 200, body };
}
