// REST client of the kd-fleet API: JSON in and out, the operator token from sessionStorage, errors as ApiError.

const TOKEN_KEY = 'kd-fleet-token';

/** An API answer other than 2xx, with the server's {error: {code, message}} when it sent one. */
export class ApiError extends Error {
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

/** Stores (or, with '', forgets) the operator token. */
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // private mode without storage: the token then lives only as long as the page
  }
}

const listeners = new Set();

/** Calls `fn(error)` whenever a request is refused with 401. */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

/**
 * Calls the API: `api('/api/devices')`, `api('/api/rollouts', { method: 'POST', body: {...} })`. Every call carries
 * the token when one is set (reads ignore it; `GET /api/auth` checks it); the answer's JSON is returned, an ApiError
 * thrown otherwise.
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (err) {
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
