import { ApiError } from './api-error.js';

/** Path parameters of a matched route, percent-decoded. */
export type RouteParams = Record<string, string>;

/** What a route is: its handler, and whether it changes state (then it needs the control token). */
export interface Route<H> {
  method: string;
  /** `/api/devices/:id/tags`: literal segments and `:name` parameters, each one whole segment. */
  pattern: string;
  control: boolean;
  handler: H;
}

/** A matched route and its parameters. */
export interface RouteMatch<H> {
  route: Route<H>;
  params: RouteParams;
}

interface Compiled<H> {
  route: Route<H>;
  segments: string[];
}

/**
 * Method and path routing over `/`-separated segments. A path that matches some pattern under another
 * method is a 405 (with `Allow`), one that matches none is a 404; both are thrown as ApiError.
 * @example
 * const router = new Router<Handler>().add('GET', '/api/devices/:id', false, getDevice);
 * const { route, params } = router.match('GET', '/api/devices/cam-1');
 */
export class Router<H> {
  readonly #routes: Compiled<H>[] = [];

  /** Add a route; `control` routes need the Bearer token. */
  add(method: string, pattern: string, control: boolean, handler: H): this {
    if (!pattern.startsWith('/')) throw new RangeError(`pattern must start with "/", got ${JSON.stringify(pattern)}`);
    this.#routes.push({ route: { method, pattern, control, handler }, segments: pattern.split('/').slice(1) });
    return this;
  }

  /** The route for `method` and `pathname` (not yet decoded), or an ApiError FLEET_NOT_FOUND / FLEET_METHOD_NOT_ALLOWED. */
  match(method: string, pathname: string): RouteMatch<H> {
    const parts = pathname.split('/').slice(1);
    const allowed: string[] = [];
    for (const c of this.#routes) {
      const params = matchSegments(c.segments, parts);
      if (params === undefined) continue;
      if (c.route.method === method) return { route: c.route, params };
      if (!allowed.includes(c.route.method)) allowed.push(c.route.method);
    }
    if (allowed.length > 0) {
      throw new ApiError('FLEET_METHOD_NOT_ALLOWED', `${method} is not allowed on ${pathname}; allowed: ${allowed.join(', ')}`, {
        headers: { allow: allowed.join(', ') },
      });
    }
    throw new ApiError('FLEET_NOT_FOUND', `no API route ${pathname}`);
  }
}

function matchSegments(pattern: string[], parts: string[]): RouteParams | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: RouteParams = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const part = parts[i]!;
    if (p.startsWith(':')) {
      if (part === '') return undefined;
      try {
        params[p.slice(1)] = decodeURIComponent(part);
      } catch {
        throw new ApiError('FLEET_BAD_REQUEST', `path segment ${JSON.stringify(part)} is not valid percent-encoding`);
      }
    } else if (p !== part) {
      return undefined;
    }
  }
  return params;
}
