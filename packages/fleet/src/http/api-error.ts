import { KdEdgeError } from '@kd-edge/core/util';

/** Stable codes of {@link ApiError}, the API's own refusals of a request. */
export type ApiErrorCode =
  | 'FLEET_BAD_REQUEST'
  | 'FLEET_UNAUTHORIZED'
  | 'FLEET_NOT_FOUND'
  | 'FLEET_METHOD_NOT_ALLOWED'
  | 'FLEET_TOO_LARGE';

const STATUS: Record<ApiErrorCode, number> = {
  FLEET_BAD_REQUEST: 400,
  FLEET_UNAUTHORIZED: 401,
  FLEET_NOT_FOUND: 404,
  FLEET_METHOD_NOT_ALLOWED: 405,
  FLEET_TOO_LARGE: 413,
};

/** A request the REST API refuses before it reaches the fleet's state; `status` is the HTTP status it is answered with. */
export class ApiError extends KdEdgeError {
  declare readonly code: ApiErrorCode;
  readonly status: number;
  /** Extra response headers (`Allow` for 405, `WWW-Authenticate` for 401). */
  readonly headers: Record<string, string>;
  constructor(code: ApiErrorCode, message: string, options: { headers?: Record<string, string>; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.status = STATUS[code];
    this.headers = options.headers ?? {};
  }
}
