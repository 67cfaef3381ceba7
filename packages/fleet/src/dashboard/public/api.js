// @ts-check
// REST client of the kd-fleet API: JSON in and out, the operator token from sessionStorage, errors as ApiError.

const TOKEN_KEY = 'kd-fleet-token';

/** An API answer other than 2xx, with the server's {error: {code, message}} when it sent one. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} code the server's error code (`FLEET_…`), or `HTTP_<status>` / `NETWORK`
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The token the operator entered in this tab, or '' (kept in sessionStorage: gone when the tab closes). */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

/**
 * Stores (or, with '', forgets) the operator token.
 * @param {string} token
 */
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // private mode without storage: the token then lives only as long as the page
  }
}

/** @type {Set<(error: ApiError) => void>} */
const listeners = new Set();

/**
 * Calls `fn(error)` whenever a request is refused with 401.
 * @param {(error: ApiError) => void} fn
 */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

/**
 * Calls the API: `api('/api/devices')`, `api('/api/rollouts', { method: 'POST', body: {...} })`. Every call carries
 * the token when one is set (reads ignore it; `GET /api/auth` checks it); the answer's JSON is returned, an ApiError
 * thrown otherwise. The answer's type is the one the caller gives it (unknown when it gives none): the server is
 * trusted to send what api-types.d.ts says.
 * @template [T=unknown]
 * @param {string} path
 * @param {{ method?: string, body?: unknown, signal?: AbortSignal }} [init]
 * @returns {Promise<T>} the answer's JSON (undefined for an empty body)
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (e) {
    const err = /** @type {{ name?: string, message?: string } | null | undefined} */ (e);
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `cannot reach the fleet server (${err && err.message ? err.message : err})`);
  }
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json && json.error ? json.error : {};
    const error = new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? (text.slice(0, 200) || res.statusText));
    if (res.status === 401) for (const fn of listeners) fn(error);
    throw error;
  }
  return json;
}
