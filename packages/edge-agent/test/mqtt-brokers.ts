// Real brokers for the MQTT tests: an embedded aedes whose listener can be stopped and restarted on the same port,
// and a Mosquitto child process on a free port.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Aedes } from 'aedes';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** An aedes broker served over TCP; `down()` cuts every client and stops listening, `up()` listens again on the same port. */
export interface AedesHarness {
  broker: Aedes;
  port: number;
  url: string;
  down(): Promise<void>;
  up(): Promise<void>;
  /** Destroys the sockets of the client with this id (all clients when omitted) without stopping the listener: a blip. */
  cut(clientId?: string): void;
  close(): Promise<void>;
}

export async function startAedes(port = 0): Promise<AedesHarness> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  let server: Server = makeServer();
  function makeServer(): Server {
    const s = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      broker.handle(socket);
    });
    return s;
  }
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const bound = (server.address() as { port: number }).port;
  const cut = (clientId?: string): void => {
    if (clientId === undefined) {
      for (const socket of sockets) socket.destroy();
      return;
    }
    const client = (broker as unknown as { clients: Record<string, { conn: { destroy(): void } }> }).clients[clientId];
    client?.conn.destroy();
  };
  return {
    broker,
    port: bound,
    url: `mqtt://127.0.0.1:${bound}`,
    cut,
    async down() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      cut();
      await closed;
    },
    async up() {
      server = makeServer();
      server.listen(bound, '127.0.0.1');
      await once(server, 'listening');
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/** A Mosquitto broker on a free local port, anonymous access, no persistence. */
export interface MosquittoHarness {
  port: number;
  url: string;
  pid: number;
  close(): Promise<void>;
}

export const MOSQUITTO = '/usr/sbin/mosquitto';

/**
 * Starts Mosquitto; `acl` (lines of a Mosquitto acl_file) restricts what anonymous clients may do, and
 * `config` lines are added to its configuration (queue limits, `sys_interval`, …).
 */
export async function startMosquitto(options: { acl?: string[]; config?: string[] } = {}): Promise<MosquittoHarness> {
  const { acl } = options;
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'kd-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  let text = `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n${(options.config ?? []).map((l) => `${l}\n`).join('')}`;
  if (acl) {
    // Mosquitto started as root reads the ACL after dropping to its own user.
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'acl'), acl.join('\n') + '\n', { mode: 0o644 });
    text += `acl_file ${join(dir, 'acl')}\n`;
  }
  await writeFile(config, text);
  const child: ChildProcess = spawn(MOSQUITTO, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const deadline = Date.now() + 20_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not start on ${port}: ${stderr}`);
    }
    await delay(20);
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid!,
    async close() {
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A plain mqtt.js client that watches what the agent publishes. */
export async function observer(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, protocolVersion: 4, ...options });
}

/** Collects messages on `client` for the given filter, in arrival order. */
export function collect(client: MqttClient, filter: (topic: string) => boolean = () => true): Array<{ topic: string; payload: string; retain: boolean }> {
  const seen: Array<{ topic: string; payload: string; retain: boolean }> = [];
  client.on('message', (topic, payload, packet) => {
    if (filter(topic)) seen.push({ topic, payload: payload.toString(), retain: packet.retain });
  });
  return seen;
}

/** Polls `predicate` every 10 ms; the default timeout is long because it only matters when the test fails (busy CI runners). */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A TCP relay in front of a broker: `cut()` kills the relayed connections, as a dead network link would. */
export interface TcpRelay {
  port: number;
  url: string;
  cut(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<TcpRelay> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((inbound) => {
    const outbound = netConnect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = (): void => {
      inbound.destroy();
      outbound.destroy();
      pairs.delete(pair);
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const cut = (): void => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    cut,
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
