import { ok, type ApiRouteHandler } from '../http/api-route.js';
import { queryBoolean, queryString } from '../http/query-params.js';
import { tensorrtVersions } from './tensorrt-versions.js';

/**
 * `GET /api/tensorrt-versions?tag=&online=`: the distinct TensorRT versions the devices' latest statuses report
 * ({@link tensorrtVersions}), of every device not removed, or of those with the tag / online state asked for.
 */
export const getTensorrtVersions: ApiRouteHandler = ({ ctx, query }) => {
  const tag = queryString(query, 'tag');
  const online = queryBoolean(query, 'online');
  return ok(tensorrtVersions(ctx.devices.list({ ...(tag !== undefined ? { tag } : {}), ...(online !== undefined ? { online } : {}) })));
};
