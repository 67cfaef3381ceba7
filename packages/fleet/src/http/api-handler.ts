import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { getTensorrtVersions } from '../devices/tensorrt-versions-route.js';
import type { FleetContext } from '../server/fleet-context.js';
import { addAdaptRoutes } from './adapt-routes.js';
import { ok, type ApiLimits, type ApiRouteHandler } from './api-route.js';
import { requireControlToken } from './auth.js';
import { addDeviceRoutes } from './device-routes.js';
import { errorResponse } from './error-response.js';
import { DEFAULT_PACKAGE_LIMIT } from './file-body.js';
import { DEFAULT_JSON_LIMIT } from './json-body.js';
import { LiveEvents, type LiveEventsOptions } from './live-events.js';
import { addModelRoutes } from './model-routes.js';
import { addPullRoutes } from './pull-routes.js';
import { sendJson } from './respond.js';
import { addRolloutRoutes } from './rollout-routes.js';
import { Router } from './router.js';

/** Options of {@link createApiHandler}. */
export interface ApiHandlerOptions {
  /** Largest JSON body, bytes (default 1 MiB). */
  jsonLimit?: number;
  /** Largest package upload, bytes (default 2 GiB). */
  packageLimit?: number;
  /** Where uploads are spooled before the registry verifies them (default the OS temp directory). */
  tempDir?: string;
  /** Options of the event stream (heartbeat, coalescing window, per-client buffer limit). */
  events?: Omit<LiveEventsOptions, 'logger'>;
}

/** The API's request handler: resolves false, answering nothing, for a path outside `/api`; `close()` ends the event streams. */
export interface ApiHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** The event-stream hub behind `GET /api/events`. */
  readonly events: LiveEvents;
  /** End every event stream and stop listening to the fleet (call before closing the HTTP server, which waits for open streams). */
  close(): void;
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer of bytes, got ${String(value)}`);
  return value;
}

/**
 * The REST API of kd-fleet under `/api/`: reads (info, devices, models, rollouts, adaptation jobs, the live event stream)
 * are open; every POST and PUT needs `Authorization: Bearer <ctx.token>`, and none is accepted when the
 * server has no token, except a device's `PUT /api/uploads/:token`, whose one-time token is its credential. Errors are JSON `{error: {code, message}}` with the status of their code; an
 * unexpected failure is logged and answered with a generic 500, never a stack trace.
 * @example
 * const api = createApiHandler(ctx);
 * http.on('request', async (req, res) => (await serveArtifact(req, res, ctx.registry)) || (await api(req, res)) || notFound(res));
 */
export function createApiHandler(ctx: FleetContext, options: ApiHandlerOptions = {}): ApiHandler {
  if (typeof ctx !== 'object' || ctx === null) throw new TypeError('ctx must be a FleetContext');
  const limits: ApiLimits = {
    jsonLimit: limit(options.jsonLimit, DEFAULT_JSON_LIMIT, 'options.jsonLimit'),
    packageLimit: limit(options.packageLimit, DEFAULT_PACKAGE_LIMIT, 'options.packageLimit'),
    tempDir: options.tempDir ?? tmpdir(),
  };
  const events = new LiveEvents(ctx, { ...options.events, logger: ctx.logger });
  const router = new Router<ApiRouteHandler>();
  router.add('GET', '/api/info', false, () => ok({ fleet: ctx.fleet, ...ctx.info(), auth: { controls: ctx.token !== undefined && ctx.token !== '' } }));
  // A control route that changes nothing: the dashboard checks an operator's token with it (200, or 401 and why).
  router.add('GET', '/api/auth', true, () => ok({ controls: true }));
  router.add('GET', '/api/events', false, ({ req, res }) => {
    events.handle(req, res);
    return undefined;
  });
  addDeviceRoutes(router);
  router.add('GET', '/api/tensorrt-versions', false, getTensorrtVersions);
  addModelRoutes(router);
  addRolloutRoutes(router);
  addAdaptRoutes(router);
  addPullRoutes(router);

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = parseUrl(req.url);
    if (url === undefined || (url.pathname !== '/api' && !url.pathname.startsWith('/api/'))) return false;
    const method = req.method ?? 'GET';
    try {
      const { route, params } = router.match(method, url.pathname);
      // Before the body is read: an unauthorised upload is refused without spooling a byte of it.
      if (route.control) requireControlToken(req, ctx.token);
      const result = await route.handler({ req, res, params, query: url.searchParams, ctx, limits });
      if (result !== undefined) sendJson(res, result.status, result.body);
    } catch (err) {
      const answer = errorResponse(err, ctx.logger, `${method} ${url.pathname}`);
      if (res.headersSent) {
        res.destroy();
      } else {
        const headers = { ...answer.headers };
        if (!req.complete) {
          // The body is left unread (refused early, or too large): let it drain while the answer goes out, then close.
          headers.connection = 'close';
          req.resume();
        }
        sendJson(res, answer.status, answer.body, headers);
      }
    }
    return true;
  };
  return Object.assign(handler, { events, close: () => events.close() });
}

function parseUrl(raw: string | undefined): URL | undefined {
  try {
    return new URL(raw ?? '/', 'http://kd-fleet.invalid');
  } catch {
    return undefined;
  }
}
