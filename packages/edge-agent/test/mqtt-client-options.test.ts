import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildClientOptions, DEFAULT_SESSION_EXPIRY_SEC } from '../src/mqtt/client-options.js';

const BASE = { url: 'mqtt://broker:1883', clientId: 'cam-01' };

describe('buildClientOptions', () => {
  it('asks for a persistent MQTT 5 session with an expiry, a QoS 1 Will, and leaves reconnects to the session', async () => {
    const o = await buildClientOptions({ ...BASE, will: { topic: 'kd/v1/lab/devices/cam-01/status', payload: '{"online":false}' } });
    expect(o).toMatchObject({ clientId: 'cam-01', protocolVersion: 5, clean: false, reconnectPeriod: 0, resubscribe: false });
    expect(o.properties).toEqual({ sessionExpiryInterval: DEFAULT_SESSION_EXPIRY_SEC });
    expect(o.will).toEqual({
      topic: 'kd/v1/lab/devices/cam-01/status',
      payload: Buffer.from('{"online":false}'),
      qos: 1,
      retain: true,
    });
  });

  it('speaks MQTT 3.1.1 without MQTT 5 properties', async () => {
    const o = await buildClientOptions({ ...BASE, protocolVersion: 4, username: 'u', password: 'p', sessionExpirySec: 60 });
    expect(o).toMatchObject({ protocolVersion: 4, clean: false, username: 'u', password: 'p' });
    expect(o.properties).toBeUndefined();
  });

  it('reads the CA, client certificate and key from files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kd-tls-'));
    try {
      await writeFile(join(dir, 'ca.pem'), 'CA');
      await writeFile(join(dir, 'cert.pem'), 'CERT');
      await writeFile(join(dir, 'key.pem'), 'KEY');
      const o = await buildClientOptions({
        ...BASE,
        url: 'mqtts://broker:8883',
        tls: { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
      });
      expect([o.ca?.toString(), o.cert?.toString(), o.key?.toString(), o.rejectUnauthorized]).toEqual(['CA', 'CERT', 'KEY', true]);
      await expect(buildClientOptions({ ...BASE, tls: { caFile: join(dir, 'missing.pem') } })).rejects.toMatchObject({
        code: 'MQTT_TLS_FILE',
        message: expect.stringContaining('tls.caFile'),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts the four URL schemes and names what is wrong otherwise', async () => {
    for (const url of ['mqtt://h', 'mqtts://h', 'ws://h/mqtt', 'wss://h/mqtt']) await expect(buildClientOptions({ ...BASE, url })).resolves.toBeDefined();
    await expect(buildClientOptions({ ...BASE, url: 'http://h' })).rejects.toThrow(/url scheme/);
    await expect(buildClientOptions({ ...BASE, url: 'not a url' })).rejects.toThrow(TypeError);
    await expect(buildClientOptions({ ...BASE, clientId: '' })).rejects.toThrow(/clientId/);
    await expect(buildClientOptions({ ...BASE, protocolVersion: 3 as 4 })).rejects.toThrow(/protocolVersion/);
    await expect(buildClientOptions({ ...BASE, sessionExpirySec: -1 })).rejects.toThrow(/sessionExpirySec/);
    await expect(buildClientOptions({ ...BASE, tls: { certFile: 'a.pem' } })).rejects.toThrow(/keyFile/);
    await expect(buildClientOptions({ ...BASE, will: { topic: 'kd/+/status', payload: '' } })).rejects.toThrow(/will.topic/);
    await expect(buildClientOptions({ ...BASE, protocolVersion: 4, password: 'p' })).rejects.toThrow(/username/);
  });
});
