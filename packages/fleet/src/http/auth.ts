import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error.js';

const CHALLENGE = { 'www-authenticate': 'Bearer realm="kd-fleet"' };

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Check a control request's `Authorization: Bearer <token>` against the server's token, in constant
 * time (both sides are hashed first, so neither the token's bytes nor its length leak through timing).
 * Throws ApiError FLEET_UNAUTHORIZED when it is missing or wrong, and always when the server has no
 * token: such a server is read-only.
 */
export function requireControlToken(req: IncomingMessage, token: string | undefined): void {
  if (token === undefined || token === '') {
    throw new ApiError(
      'FLEET_UNAUTHORIZED',
      'this kd-fleet server is read-only: it was started without a control token, so it refuses every state-changing request',
      { headers: CHALLENGE },
    );
  }
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  if (m === null) {
    throw new ApiError('FLEET_UNAUTHORIZED', 'this is a control request and needs an "Authorization: Bearer <token>" header', { headers: CHALLENGE });
  }
  if (!timingSafeEqual(digest(m[1]!), digest(token))) {
    throw new ApiError('FLEET_UNAUTHORIZED', 'the Bearer token is not this server\'s control token', {
      headers: { 'www-authenticate': 'Bearer realm="kd-fleet", error="invalid_token"' },
    });
  }
}
