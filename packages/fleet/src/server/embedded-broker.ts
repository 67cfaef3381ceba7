import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { listen, portOf } from './listen.js';

/** Where {@link startEmbeddedBroker} listens. */
export interface EmbeddedBrokerOptions {
  host: string;
  /** MQTT over TCP; 0 picks a free port. */
  mqttPort: number;
  /** MQTT over WebSocket; 0 picks a free port, false: none. */
  wsPort: number | false;
}

/** A running embedded broker: its URLs, and how to stop it. */
export interface EmbeddedBroker {
  mqttUrl: string;
  wsUrl: string | undefined;
  /** Drops every client connection and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts kd-fleet's embedded broker: aedes (MQTT 3.1.1, sessions and retained messages in memory) on TCP
 * and, unless `wsPort` is false, on WebSocket.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { host } = options;
  const aedes = await Aedes.createBroker();
  // The sockets are kept so that close() can end them: a TCP server's close waits for its connections.
  const sockets = new Set<Socket>();
  const tcp: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await listen(tcp, options.mqttPort, host);
  const mqttUrl = `mqtt://${host}:${portOf(tcp)}`;
  let wsHttp: HttpServer | undefined;
  let wss: WebSocketServer | undefined;
  let wsUrl: string | undefined;
  if (options.wsPort !== false) {
    wsHttp = createHttpServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket only'));
    wss = new WebSocketServer({ server: wsHttp });
    wss.on('connection', (ws) => aedes.handle(createWebSocketStream(ws) as never));
    await listen(wsHttp, options.wsPort, host);
    wsUrl = `ws://${host}:${portOf(wsHttp)}`;
  }
  const close = async (): Promise<void> => {
    if (wsHttp) {
      for (const c of wss?.clients ?? []) c.terminate();
      wsHttp.closeAllConnections();
      await new Promise<void>((r) => wsHttp!.close(() => r()));
    }
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
    await new Promise<void>((r) => aedes.close(() => r()));
  };
  return { mqttUrl, wsUrl, close };
}
