import { ADAPT_STATES, type AdaptState } from '@kd-edge/core/protocol';
import { AdaptError } from '../adapt/adapt-error.js';
import type { AdaptJobDetail } from '../adapt/adapt-job.js';
import type { FleetContext } from '../server/fleet-context.js';
import { ApiError } from './api-error.js';
import { ok, type ApiRouteHandler } from './api-route.js';
import { expectObject, readJsonBody } from './json-body.js';
import { queryInteger, queryString } from './query-params.js';
import type { Router } from './router.js';

/** Most jobs one list request may ask for. */
export const MAX_ADAPT_JOBS = 1000;

function requireDevice(ctx: FleetContext, id: string): void {
  if (ctx.devices.get(id) === undefined) throw new ApiError('FLEET_NOT_FOUND', `no device ${JSON.stringify(id)} in fleet ${ctx.fleet}`);
}

/** `state=training,failed`: each one an adaptation job state. */
function statesOf(query: URLSearchParams): AdaptState[] | undefined {
  const raw = queryString(query, 'state');
  if (raw === undefined) return undefined;
  const states = raw.split(',');
  const bad = states.find((s) => !(ADAPT_STATES as readonly string[]).includes(s));
  if (bad !== undefined) throw new ApiError('FLEET_BAD_REQUEST', `query parameter state: ${JSON.stringify(bad)} is not one of ${ADAPT_STATES.join(', ')}`);
  return states as AdaptState[];
}

const listJobs: ApiRouteHandler = ({ ctx, query, params }) => {
  const deviceId = params.id ?? queryString(query, 'device');
  const states = statesOf(query);
  const limit = queryInteger(query, 'limit', 500, 1, MAX_ADAPT_JOBS);
  return ok(ctx.adaptJobs.list({ ...(deviceId !== undefined ? { deviceId } : {}), ...(states ? { states } : {}), limit }));
};

const getJob: ApiRouteHandler = ({ ctx, params }) => {
  const job = ctx.adaptJobs.get(params.id!, params.jobId!);
  if (job === undefined) {
    throw new AdaptError('FLEET_ADAPT_JOB_NOT_FOUND', `no adaptation job ${JSON.stringify(params.jobId)} on device ${JSON.stringify(params.id)} (the fleet records a job once the device reports it)`);
  }
  const detail: AdaptJobDetail = { job, history: ctx.adaptJobs.history(job.deviceId, job.jobId) };
  return ok(detail);
};

const startAdapt: ApiRouteHandler = async ({ ctx, params, req, limits }) => {
  const raw = await readJsonBody(req, limits.jsonLimit);
  // An empty body starts a job with the device's own defaults.
  const body = raw === undefined ? {} : expectObject(raw, '{jobId?, base?, teacher?, recipe?, activate?}');
  requireDevice(ctx, params.id!);
  return { status: 202, body: await ctx.commands.startAdapt(params.id!, body) };
};

const cancelAdapt: ApiRouteHandler = async ({ ctx, params }) => {
  requireDevice(ctx, params.id!);
  return { status: 202, body: await ctx.commands.cancelAdapt(params.id!, params.jobId!) };
};

const pushTeacher: ApiRouteHandler = async ({ ctx, params, req, limits }) => {
  const body = expectObject(await readJsonBody(req, limits.jsonLimit), '{"name": "...", "version": "...", "transport"?: "http" | "mqtt"}');
  requireDevice(ctx, params.id!);
  return { status: 202, body: await ctx.commands.pushTeacher(params.id!, body) };
};

/**
 * Add the on-device adaptation routes (issue 16): the jobs (all, by device or state, one with its history), starting
 * and cancelling a job, and pushing a teacher package to a device.
 */
export function addAdaptRoutes(router: Router<ApiRouteHandler>): void {
  router
    .add('GET', '/api/adapt-jobs', false, listJobs)
    .add('GET', '/api/devices/:id/adapt-jobs', false, listJobs)
    .add('GET', '/api/devices/:id/adapt-jobs/:jobId', false, getJob)
    .add('POST', '/api/devices/:id/adapt', true, startAdapt)
    .add('POST', '/api/devices/:id/adapt-jobs/:jobId/cancel', true, cancelAdapt)
    .add('POST', '/api/devices/:id/teacher', true, pushTeacher);
}
