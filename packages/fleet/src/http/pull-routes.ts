import type { IncomingMessage } from 'node:http';
import type { AdaptPulls } from '../adapt/adapt-pulls.js';
import type { FleetContext } from '../server/fleet-context.js';
import { ApiError } from './api-error.js';
import { ok, type ApiRouteHandler } from './api-route.js';
import { packageDetail } from './model-routes.js';
import type { Router } from './router.js';

function pullsOf(ctx: FleetContext): AdaptPulls {
  if (ctx.pulls === undefined) throw new ApiError('FLEET_NOT_FOUND', 'this kd-fleet server does not pull adapted packages (no upload store)');
  return ctx.pulls;
}

const pull: ApiRouteHandler = async ({ ctx, params }) => ({ status: 202, body: await pullsOf(ctx).pull(params.id!, params.jobId!) });

/** Most bytes of a refused upload read and dropped so that the device reads the refusal rather than a reset connection. */
export const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/** Read and drop the rest of a refused body (at most `max` bytes; past that the connection is closed as before). */
function drain(req: IncomingMessage, max: number): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    const done = (): void => {
      req.off('data', onData);
      resolve();
    };
    const onData = (c: Buffer): void => {
      n += c.length;
      if (n > max) done();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.resume();
  });
}

const upload: ApiRouteHandler = async ({ ctx, params, req, limits }) => {
  try {
    const record = await pullsOf(ctx).receive(params.token!, { req, limit: limits.packageLimit, tempDir: limits.tempDir });
    return { status: 201, body: { name: record.name, version: record.version, sha256: record.sha256 } };
  } catch (err) {
    // An agent sends its whole package before it reads the answer: a refusal answered mid-body reaches it as a reset.
    if (!req.complete && !req.destroyed) await drain(req, MAX_DRAIN_BYTES);
    throw err;
  }
};

const promote: ApiRouteHandler = async ({ ctx, params }) => ok(packageDetail(await pullsOf(ctx).promote(params.name!, params.version!)));

/**
 * Add the routes that pull an adapted package from a device and promote it (issue 16): the pull (control token), the
 * device's upload (no bearer token: the one-time token in the URL is its credential), and the promotion (control token).
 */
export function addPullRoutes(router: Router<ApiRouteHandler>): void {
  router
    .add('POST', '/api/devices/:id/adapt-jobs/:jobId/pull', true, pull)
    .add('PUT', '/api/uploads/:token', false, upload)
    .add('POST', '/api/models/:name/:version/promote', true, promote);
}
