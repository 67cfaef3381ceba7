import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { MqttSession } from '../src/mqtt/session.js';
import { waitFor } from './mqtt-brokers.js';
import { makePki } from './tls-pki.js';

let dir: string;
let broker: Aedes;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-mqtt-tls-'));
  broker = await Aedes.createBroker();
  // A throwaway CA that signs the broker's certificate and the device's client certificate.
  await makePki(dir, ['cam-01']);
});

afterAll(async () => {
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

async function connectOnce(session: MqttSession): Promise<void> {
  session.on('error', () => {});
  const connected = once(session, 'connect');
  await session.start();
  await connected;
  expect(session.connected).toBe(true);
  expect(await session.publish('kd/v1/lab/devices/cam-01/events', 'hello', { qos: 1 })).toBe('sent');
  await session.close();
}

describe('MqttSession transports', { timeout: 60_000 }, () => {
  it('connects over mqtts:// with a custom CA and a client certificate the broker requires', async () => {
    const server = createTlsServer(
      {
        key: await readFile(join(dir, 'server.key')),
        cert: await readFile(join(dir, 'server.crt')),
        ca: await readFile(join(dir, 'ca.crt')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => broker.handle(socket),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      await connectOnce(
        new MqttSession({
          url: `mqtts://127.0.0.1:${port}`,
          clientId: 'cam-01',
          protocolVersion: 4,
          tls: { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'cam-01.crt'), keyFile: join(dir, 'cam-01.key') },
        }),
      );
      // Without the client certificate the handshake fails and the session keeps retrying instead of connecting.
      const anonymous = new MqttSession({
        url: `mqtts://127.0.0.1:${port}`,
        clientId: 'cam-02',
        protocolVersion: 4,
        backoff: { baseMs: 10, maxMs: 20 },
        tls: { caFile: join(dir, 'ca.crt') },
      });
      const errors: Error[] = [];
      anonymous.on('error', (e) => errors.push(e));
      let retries = 0;
      anonymous.on('reconnecting', () => (retries += 1));
      await anonymous.start();
      await waitFor('two retries', () => retries >= 2);
      expect(anonymous.connected).toBe(false);
      // A TLS refusal is a configuration problem, so it is reported as an error and not only retried.
      expect(errors[0]?.message).toMatch(/certificate required/);
      await anonymous.close();
    } finally {
      server.close();
    }
  });

  it('connects over ws://', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    wss.on('connection', (ws) => broker.handle(createWebSocketStream(ws)));
    const { port } = wss.address() as AddressInfo;
    try {
      await connectOnce(new MqttSession({ url: `ws://127.0.0.1:${port}/mqtt`, clientId: 'cam-ws', protocolVersion: 4 }));
    } finally {
      for (const client of wss.clients) client.terminate();
      wss.close();
    }
  });
});
