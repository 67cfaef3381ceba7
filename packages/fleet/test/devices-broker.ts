// An embedded aedes broker over TCP for the chunk service and device registry tests (MQTT 3.1.1, as
// kd-fleet's embedded broker speaks), with a way to cut one client's socket so its last will fires.
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Aedes } from 'aedes';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export interface TestBroker {
  url: string;
  /** Destroy the socket of the client with this id, as a dead link would: the broker then sends its will. */
  cut(clientId: string): void;
  close(): Promise<void>;
}

export async function startBroker(): Promise<TestBroker> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut(clientId) {
      const client = (broker as unknown as { clients: Record<string, { conn: { destroy(): void } }> }).clients[clientId];
      client?.conn.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/** An mqtt.js client speaking MQTT 3.1.1, without reconnects. */
export async function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...options });
}

/** Polls `predicate` until it holds; the error names `what`. */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Timers the test fires by hand: `setTimeout` only records, `fire()` runs what is due, in order. */
export class ManualTimers {
  readonly #pending = new Map<number, () => void>();
  #next = 1;
  readonly setTimeout = (fn: () => void): unknown => {
    const id = this.#next++;
    this.#pending.set(id, fn);
    return id;
  };
  readonly clearTimeout = (handle: unknown): void => {
    this.#pending.delete(handle as number);
  };
  get pending(): number {
    return this.#pending.size;
  }
  /** Run every timer set so far. */
  fire(): void {
    const due = [...this.#pending.values()];
    this.#pending.clear();
    for (const fn of due) fn();
  }
}
