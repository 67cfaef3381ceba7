import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { envOverrides, loadAgentConfig } from '../src/config/agent-config.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-agent-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('agent configuration', () => {
  it('fills defaults and lets env override the file and flags override env', async () => {
    const f = file('a.yaml', 'fleet: lab\ndeviceId: nano-01\nkeys: [/etc/kd/fleet.pub]\nbroker:\n  url: mqtt://broker:1883\n  protocolVersion: 4\n');
    const c = await loadAgentConfig({
      file: f,
      env: { KD_AGENT_BROKER__URL: 'mqtts://b:8883', KD_AGENT_BENCHMARK__ITERATIONS: '20', PATH: '/bin' },
      overrides: { benchmark: { iterations: 7 } },
    });
    expect(c).toMatchObject({ fleet: 'lab', deviceId: 'nano-01', dataDir: '/var/lib/kd-agent' });
    expect(c.broker).toMatchObject({ url: 'mqtts://b:8883', protocolVersion: 4, keepalive: 30 });
    expect(c.benchmark).toEqual({ warmup: 10, iterations: 7 });
    expect(c.runtime.providers).toEqual(['cpu']);
  });

  it("defaults the MQTT version to 'auto' and takes 'auto', 5 or 4 from the environment, nothing else", async () => {
    const base = { overrides: { keys: ['k.pub'] } };
    expect((await loadAgentConfig(base)).broker.protocolVersion).toBe('auto');
    for (const v of ['auto', '5', '4']) {
      const c = await loadAgentConfig({ ...base, env: { KD_AGENT_BROKER__PROTOCOL_VERSION: v } });
      expect(String(c.broker.protocolVersion)).toBe(v);
    }
    await expect(loadAgentConfig({ ...base, env: { KD_AGENT_BROKER__PROTOCOL_VERSION: '3' } })).rejects.toThrow(/broker\.protocolVersion/);
  });

  it('names the file and the field of every invalid value', async () => {
    const f = file('bad.yaml', 'keys: [k.pub]\nbroker:\n  url: http://x\nbenchmark:\n  iterations: 0\nserve:\n  source: { dir: a, replay: b }\n');
    const err = (await loadAgentConfig({ file: f }).then(() => undefined, (e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('AGENT_CONFIG_INVALID');
    expect(err.message).toContain('bad.yaml');
    expect(err.message).toMatch(/broker\.url: an mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URL/);
    expect(err.message).toMatch(/benchmark\.iterations/);
    expect(err.message).toMatch(/serve\.source: give exactly one of dir or replay/);
  });

  it('refuses unknown keys, a missing key list, a client cert without its key, and non-YAML', async () => {
    await expect(loadAgentConfig({ file: file('u.yaml', 'keys: [k]\nbrokr: {}\n') })).rejects.toThrow(/brokr/);
    await expect(loadAgentConfig({ file: file('n.yaml', 'fleet: lab\n') })).rejects.toThrow(/keys/);
    await expect(loadAgentConfig({ file: file('c.yaml', 'keys: [k]\nbroker: { cert: c.pem }\n') })).rejects.toThrow(/broker\.cert: cert and key go together/);
    await expect(loadAgentConfig({ file: file('y.yaml', 'keys: [k\n') })).rejects.toThrow(/y\.yaml: not YAML/);
    await expect(loadAgentConfig({ file: join(dir, 'absent.yaml') })).rejects.toThrow(/absent\.yaml: cannot read it \(ENOENT\)/);
    await expect(loadAgentConfig({ overrides: { keys: ['k'], deviceId: 'a/b' } })).rejects.toThrow(/deviceId/);
  });

  it('accepts the shipped example configuration (docker/agent/agent.example.yaml)', async () => {
    const example = new URL('../../../docker/agent/agent.example.yaml', import.meta.url).pathname;
    const c = await loadAgentConfig({ file: example });
    expect(c).toMatchObject({ fleet: 'lab', deviceId: 'nano-01', runtime: { trtexec: '/usr/src/tensorrt/bin/trtexec' } });
    expect(c.serve.source).toMatchObject({ dir: '/var/lib/kd-agent/frames' });
    expect(c.limits).toMatchObject({ downloadDeadlineSec: 1800, downloadMinBytesPerSec: 1024, downloadRateWindowSec: 30, downloadRetryWindowSec: 300, downloadIdleTimeoutSec: 30 });
  });

  it('bounds HTTP downloads by default and validates the download limits', async () => {
    const base = { overrides: { keys: ['k.pub'] } };
    expect((await loadAgentConfig(base)).limits).toMatchObject({
      downloadDeadlineSec: 1800, downloadMinBytesPerSec: 1024, downloadRateWindowSec: 30, downloadRetryWindowSec: 300, downloadIdleTimeoutSec: 30,
    });
    const c = await loadAgentConfig({ ...base, env: { KD_AGENT_LIMITS__DOWNLOAD_DEADLINE_SEC: '7200', KD_AGENT_LIMITS__DOWNLOAD_MIN_BYTES_PER_SEC: '0' } });
    expect(c.limits).toMatchObject({ downloadDeadlineSec: 7200, downloadMinBytesPerSec: 0 });
    for (const [key, value] of [
      ['downloadDeadlineSec', -1],
      ['downloadDeadlineSec', 1.5],
      ['downloadMinBytesPerSec', -1],
      ['downloadRateWindowSec', 0],
      ['downloadRetryWindowSec', -5],
      ['downloadIdleTimeoutSec', 0],
    ] as const) {
      await expect(loadAgentConfig({ overrides: { keys: ['k.pub'], limits: { [key]: value } } })).rejects.toThrow(new RegExp(`limits\\.${key}`));
    }
  });

  it('maps KD_AGENT_ variables to nested camelCase keys with YAML scalars', () => {
    expect(envOverrides({ KD_AGENT_DATA_DIR: '/d', KD_AGENT_RUNTIME__PROVIDERS: '[cuda, cpu]', KD_AGENT_SERVE__SERIAL__BAUD: '9600', OTHER: 'x' }))
      .toEqual({ dataDir: '/d', runtime: { providers: ['cuda', 'cpu'] }, serve: { serial: { baud: 9600 } } });
  });

  it('refuses a service account\'s name as its device id, naming it', async () => {
    for (const id of ['kd-fleet', 'kd-dashboard']) {
      await expect(loadAgentConfig({ overrides: { keys: ['k.pub'], deviceId: id } })).rejects.toThrow(`deviceId: "${id}" is reserved for a kd-edge service account (kd-fleet, kd-dashboard)`);
    }
    await expect(loadAgentConfig({ overrides: { keys: ['k.pub'], deviceId: 'kd-fleet-1' } })).resolves.toMatchObject({ deviceId: 'kd-fleet-1' });
  });
});
