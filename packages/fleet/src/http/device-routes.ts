import { KEY_ID_RE } from '@kd-edge/core/protocol';
import { normaliseTags } from '../devices/device-tags.js';
import { benchSummary, type BenchRecord, type BenchSummary, type DeviceRecord } from '../devices/device-record.js';
import type { FleetContext } from '../server/fleet-context.js';
import { ApiError } from './api-error.js';
import { ok, type ApiRouteHandler } from './api-route.js';
import { expectObject, readJsonBody } from './json-body.js';
import { queryBoolean, queryInteger, queryString } from './query-params.js';
import type { Router } from './router.js';

/** Most latency points one request may ask for. */
export const MAX_LATENCY_POINTS = 1000;

/** An entry of GET /api/devices: the device with its latest bench report's figures, null before its first report. */
export interface DeviceListEntry extends DeviceRecord {
  bench: BenchSummary | null;
}

/** GET /api/devices/:id: the device and its latest stored bench report. */
export interface DeviceDetail {
  device: DeviceRecord;
  bench: BenchRecord | null;
}

/** One point of GET /api/devices/:id/latency (oldest first). */
export type LatencyPoint = Pick<BenchRecord, 'ts' | 'p50' | 'p95' | 'fps'>;

function requireDevice(ctx: FleetContext, id: string): DeviceRecord {
  const device = ctx.devices.get(id);
  if (device === undefined) throw new ApiError('FLEET_NOT_FOUND', `no device ${JSON.stringify(id)} in fleet ${ctx.fleet}`);
  return device;
}

const listDevices: ApiRouteHandler = ({ ctx, query }) => {
  const tag = queryString(query, 'tag');
  const online = queryBoolean(query, 'online');
  const devices = ctx.devices.list({ ...(tag !== undefined ? { tag } : {}), ...(online !== undefined ? { online } : {}) });
  const latest = ctx.devices.latestBenches();
  return ok(devices.map((d): DeviceListEntry => {
    const bench = latest.get(d.id);
    return { ...d, bench: bench === undefined ? null : benchSummary(bench) };
  }));
};

const getDevice: ApiRouteHandler = ({ ctx, params }) => {
  const device = requireDevice(ctx, params.id!);
  const detail: DeviceDetail = { device, bench: ctx.devices.latestBench(device.id) ?? null };
  return ok(detail);
};

const getLatency: ApiRouteHandler = ({ ctx, params, query }) => {
  const limit = queryInteger(query, 'limit', 100, 1, MAX_LATENCY_POINTS);
  const device = requireDevice(ctx, params.id!);
  return ok(ctx.devices.latencyHistory(device.id, limit).map((b): LatencyPoint => ({ ts: b.ts, p50: b.p50, p95: b.p95, fps: b.fps })));
};

const putTags: ApiRouteHandler = async ({ ctx, params, req, limits }) => {
  const body = expectObject(await readJsonBody(req, limits.jsonLimit), '{"tags": [...]}');
  let tags: string[];
  try {
    tags = normaliseTags(body.tags as string[]);
  } catch (err) {
    // normaliseTags names the bad entry (`tags[2] must match …`): exactly what the client needs.
    throw new ApiError('FLEET_BAD_REQUEST', body.tags === undefined ? 'tags: expected an array of tags, got nothing' : (err as Error).message);
  }
  return ok(ctx.devices.setTags(params.id!, tags));
};

const acceptKey: ApiRouteHandler = async ({ ctx, params, req, limits }) => {
  const body = expectObject(await readJsonBody(req, limits.jsonLimit), '{"keyId": "<16 hex characters>"}');
  // The operator names the key they checked, so a key the device reported after they looked is never accepted unseen.
  if (typeof body.keyId !== 'string' || !KEY_ID_RE.test(body.keyId)) {
    throw new ApiError('FLEET_BAD_REQUEST', `keyId: expected the 16 lower-case hex characters of the key to accept, got ${body.keyId === undefined ? 'nothing' : JSON.stringify(body.keyId)}`);
  }
  return ok(ctx.devices.acceptKey(params.id!, body.keyId));
};

/**
 * Add the device routes: list (by tag, online), one device with its latest bench, its latency history, setting its
 * tags, and accepting its device key.
 */
export function addDeviceRoutes(router: Router<ApiRouteHandler>): void {
  router
    .add('GET', '/api/devices', false, listDevices)
    .add('GET', '/api/devices/:id', false, getDevice)
    .add('GET', '/api/devices/:id/latency', false, getLatency)
    .add('PUT', '/api/devices/:id/tags', true, putTags)
    .add('POST', '/api/devices/:id/key/accept', true, acceptKey);
}
