import { serveDashboard } from '../dashboard/serve-dashboard.js';
import { createApiHandler } from '../http/api-handler.js';
import type { FleetContext } from './fleet-context.js';
import type { FleetHandler } from './fleet-server.js';

/**
 * The REST API (`/api/…`, with its live event stream) and the dashboard (`/`) on a server's context,
 * for `FleetServer.start({ handlers: webHandlers() })`.
 */
export function webHandlers(): (ctx: FleetContext) => FleetHandler[] {
  return (ctx) => {
    const api = createApiHandler(ctx);
    // The event streams end when the server closes (FleetServer.close ends every connection first).
    return [api, (req, res) => serveDashboard(req, res)];
  };
}
