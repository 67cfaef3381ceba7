import type { Server as HttpServer } from 'node:http';
import type { Server as TcpServer } from 'node:net';

/** Starts `server` listening on `port` (0: a free one) at `host`; rejects with the listen error (EADDRINUSE…). */
export function listen(server: HttpServer | TcpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The port a listening server got. */
export function portOf(server: HttpServer | TcpServer): number {
  return (server.address() as { port: number }).port;
}
