import { ApiError } from './api-error.js';

/** A `true`/`false` query parameter, or undefined when absent or empty; anything else is ApiError FLEET_BAD_REQUEST. */
export function queryBoolean(query: URLSearchParams, name: string): boolean | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ApiError('FLEET_BAD_REQUEST', `query parameter ${name} must be true or false, got ${JSON.stringify(v)}`);
}

/** An integer query parameter in [min, max], `fallback` when absent or empty; anything else is ApiError FLEET_BAD_REQUEST. */
export function queryInteger(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const v = query.get(name);
  if (v === null || v === '') return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ApiError('FLEET_BAD_REQUEST', `query parameter ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return n;
}

/** A string query parameter, or undefined when absent or empty. */
export function queryString(query: URLSearchParams, name: string): string | undefined {
  const v = query.get(name);
  return v === null || v === '' ? undefined : v;
}
