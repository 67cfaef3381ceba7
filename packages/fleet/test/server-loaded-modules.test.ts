import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core/package';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../edge-agent/test/mqtt-brokers.js';

const BIN = fileURLToPath(new URL('../src/bin/kd-fleet.ts', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-fleet-modules-'));
  await writeKeyPair(generateKeyPair(), { privateKeyPath: join(dir, 'k.key'), publicKeyPath: join(dir, 'k.pub') });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// What a process has mapped is what it loaded: native bindings show up in /proc/<pid>/maps (Linux only).
describe.skipIf(!existsSync('/proc/self/maps'))('kd-fleet serve', () => {
  it('loads neither ONNX Runtime, sharp nor serialport: the fleet server imports only the parts of core it uses', async () => {
    const [http, mqtt, ws] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(process.execPath, [
      '--conditions=source', '--import', 'tsx', BIN, 'serve', '--trust', join(dir, 'k.pub'), '--data', join(dir, 'data'),
      '--port', String(http), '--mqtt-port', String(mqtt), '--ws-port', String(ws), '--log-level', 'warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      let up = false;
      const probe = (): void => void fetch(`http://127.0.0.1:${http}/api/info`).then((r) => (up = r.ok), () => undefined);
      const timer = setInterval(probe, 200);
      await waitFor(`kd-fleet serve up (${stderr})`, () => up, 60_000).finally(() => clearInterval(timer));
      const maps = await readFile(`/proc/${child.pid}/maps`, 'utf8');
      const natives = [...new Set(maps.split('\n').map((l) => l.split(/\s+/)[5] ?? '').filter((f) => /\.(node|so[.\d]*)$/.test(f) && f.includes('node_modules')))];
      expect(natives.some((f) => f.includes('better_sqlite3'))).toBe(true); // the check sees what is loaded
      expect(natives.filter((f) => /onnxruntime|sharp|vips|serialport/.test(f))).toEqual([]);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  }, 120_000);
});
