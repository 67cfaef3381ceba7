import { KdEdgeError, type Logger } from '@kd-edge/core/util';
import { PULL_ERROR_STATUS } from '../adapt/pull-error.js';
import { ApiError } from './api-error.js';

/** The JSON body of every error the API answers: a stable code, a message for people, and the spec field at fault when there is one. */
export interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error turned into what the client is told. */
export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: ApiErrorBody;
}

/** HTTP status of each KdEdgeError code the fleet's modules throw on purpose; any other error is a 500. */
export const ERROR_STATUS: Readonly<Record<string, number>> = {
  FLEET_BAD_REQUEST: 400,
  FLEET_ROLLOUT_SPEC: 400,
  FLEET_ROLLOUT_NO_TARGETS: 400,
  FLEET_PACKAGE_REFUSED: 400,
  FLEET_PACKAGE_ROLE: 400,
  FLEET_ROLLOUT_TEACHER: 400,
  FLEET_UNAUTHORIZED: 401,
  FLEET_NOT_FOUND: 404,
  FLEET_PACKAGE_NOT_FOUND: 404,
  FLEET_DEVICE_NOT_FOUND: 404,
  FLEET_ROLLOUT_NOT_FOUND: 404,
  FLEET_ADAPT_JOB_NOT_FOUND: 404,
  FLEET_METHOD_NOT_ALLOWED: 405,
  FLEET_PACKAGE_EXISTS: 409,
  FLEET_ROLLOUT_CONFLICT: 409,
  FLEET_ROLLOUT_STATE: 409,
  FLEET_DEVICE_KEY_CONFLICT: 409,
  FLEET_TOO_LARGE: 413,
  ...PULL_ERROR_STATUS,
};

/**
 * Map an error thrown while answering a request to its response: a KdEdgeError with a known code keeps
 * its code and message (and `field`, for a rollout spec); anything else is logged with its stack and
 * answered with a generic 500, since its message may hold paths or internals the client has no use for.
 */
export function errorResponse(err: unknown, logger: Logger, what: string): ErrorResponse {
  if (err instanceof KdEdgeError && ERROR_STATUS[err.code] !== undefined) {
    const status = err instanceof ApiError ? err.status : ERROR_STATUS[err.code]!;
    const field = (err as { field?: unknown }).field;
    const body: ApiErrorBody = { error: { code: err.code, message: err.message, ...(typeof field === 'string' ? { field } : {}) } };
    return { status, headers: err instanceof ApiError ? err.headers : {}, body };
  }
  logger.error(`api: ${what} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return { status: 500, headers: {}, body: { error: { code: 'FLEET_INTERNAL', message: 'internal server error; the server log has the details' } } };
}
