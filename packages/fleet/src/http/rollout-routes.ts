import { checkRolloutTrtCoverage } from '../rollout/trt-coverage.js';
import { ROLLOUT_STATES, type ExecutionInfo, type RolloutInfo, type RolloutState, type WaveInfo } from '../rollout/rollout-types.js';
import { rolloutWithWarnings, type RolloutWithWarnings } from '../rollout/rollout-warnings.js';
import type { FleetContext } from '../server/fleet-context.js';
import { ApiError } from './api-error.js';
import { ok, type ApiRequest, type ApiRouteHandler } from './api-route.js';
import { expectObject, readJsonBody } from './json-body.js';
import { queryString } from './query-params.js';
import type { Router } from './router.js';

/** Longest reason an operator may give for a pause or abort. */
export const MAX_REASON_LENGTH = 500;

/** GET /api/rollouts/:id: the rollout with its warnings, its waves and its devices. */
export interface RolloutDetail {
  rollout: RolloutWithWarnings;
  waves: WaveInfo[];
  executions: ExecutionInfo[];
}

/** A rollout as the API shows it: its record and the warnings recorded when it started ([] when none). */
function withWarnings(ctx: FleetContext, r: RolloutInfo): RolloutWithWarnings {
  return rolloutWithWarnings(r, ctx.rolloutWarnings);
}

function requireRollout(ctx: FleetContext, id: string): RolloutInfo {
  const r = ctx.rollouts.get(id);
  if (r === undefined) throw new ApiError('FLEET_NOT_FOUND', `no rollout ${JSON.stringify(id)}`);
  return r;
}

const listRollouts: ApiRouteHandler = ({ ctx, query }) => {
  const raw = queryString(query, 'state');
  if (raw === undefined) return ok(ctx.rollouts.list().map((r) => withWarnings(ctx, r)));
  const states = raw.split(',');
  const bad = states.find((s) => !(ROLLOUT_STATES as readonly string[]).includes(s));
  if (bad !== undefined) throw new ApiError('FLEET_BAD_REQUEST', `query parameter state: ${JSON.stringify(bad)} is not one of ${ROLLOUT_STATES.join(', ')}`);
  return ok(ctx.rollouts.list(states as RolloutState[]).map((r) => withWarnings(ctx, r)));
};

const getRollout: ApiRouteHandler = ({ ctx, params }) => {
  const rollout = requireRollout(ctx, params.id!);
  const detail: RolloutDetail = { rollout: withWarnings(ctx, rollout), waves: ctx.rollouts.waves(rollout.id), executions: ctx.rollouts.executions(rollout.id) };
  return ok(detail);
};

const startRollout: ApiRouteHandler = async ({ ctx, req, limits }) => {
  const body = expectObject(await readJsonBody(req, limits.jsonLimit), 'a rollout spec: {package: {name, version}, target, waves, ...}');
  const id = ctx.startRollout(body);
  // Started, not refused: a device without a calibration cache for its TensorRT builds fp16 by design (issue 17).
  return { status: 201, body: { id, warnings: await checkRolloutTrtCoverage(ctx, id) } };
};

/** The optional `{reason}` of a pause or abort; an absent or empty body gives none. */
async function reasonOf({ req, limits }: ApiRequest): Promise<string | undefined> {
  const body = await readJsonBody(req, limits.jsonLimit);
  if (body === undefined) return undefined;
  const reason = expectObject(body, '{"reason": "..."} or nothing').reason;
  if (reason === undefined) return undefined;
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_REASON_LENGTH) {
    throw new ApiError('FLEET_BAD_REQUEST', `reason: expected a non-empty string of at most ${MAX_REASON_LENGTH} characters`);
  }
  return reason;
}

type Action = (ctx: FleetContext, id: string, reason: string | undefined) => void | Promise<void>;

/** An operator's action on a rollout: POST /api/rollouts/:id/<action>. */
export type RolloutAction = 'pause' | 'resume' | 'approve' | 'abort';

const ACTIONS: Record<RolloutAction, Action> = {
  pause: (ctx, id, reason) => ctx.rollouts.pause(id, reason),
  resume: (ctx, id) => ctx.rollouts.resume(id),
  approve: (ctx, id) => ctx.rollouts.approve(id),
  abort: (ctx, id, reason) => ctx.rollouts.abort(id, reason),
};

function action(act: Action): ApiRouteHandler {
  return async (r) => {
    // Read the body first, so that a bad one is refused before anything changes.
    const reason = await reasonOf(r);
    const id = requireRollout(r.ctx, r.params.id!).id;
    await act(r.ctx, id, reason);
    // With its warnings, as every other answer and event that carries a rollout: a client may keep the answer.
    return ok(withWarnings(r.ctx, requireRollout(r.ctx, id)));
  };
}

/** Add the rollout routes: list (by state), one rollout with its waves and executions, start, and the operator's actions. */
export function addRolloutRoutes(router: Router<ApiRouteHandler>): void {
  router
    .add('GET', '/api/rollouts', false, listRollouts)
    .add('POST', '/api/rollouts', true, startRollout)
    .add('GET', '/api/rollouts/:id', false, getRollout);
  for (const [name, act] of Object.entries(ACTIONS)) router.add('POST', `/api/rollouts/:id/${name}`, true, action(act));
}
