import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPackage, generateKeyPair, keyIdOf, type Logger } from '@kd-edge/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateDeviceKey, type DeviceKey } from '../src/adapt/device-key.js';
import { verifyOwnPackage } from '../src/adapt/own-package.js';
import { AgentError } from '../src/errors.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-device-key-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const keys = (dataDir: string): { dir: string; priv: string; pub: string } => ({
  dir: join(dataDir, 'keys'), priv: join(dataDir, 'keys', 'device.key'), pub: join(dataDir, 'keys', 'device.pub'),
});
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string): void => void lines.push(`${level} ${message}`);
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The refusal of a load, checked to be the start-up error that names the file. */
async function refusal(dataDir: string): Promise<AgentError> {
  const err = await loadOrCreateDeviceKey(dataDir).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AgentError);
  expect((err as AgentError).code).toBe('AGENT_DEVICE_KEY_INVALID');
  return err as AgentError;
}

describe('loadOrCreateDeviceKey', () => {
  it('makes the key pair at first start, 0600 in a 0700 folder, and the same key at every later start', async () => {
    const log = recordingLogger();
    const first = await loadOrCreateDeviceKey(root, { logger: log });
    const k = keys(root);
    expect(first.created).toBe(true);
    expect(first.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(first.privateKeyPath).toBe(k.priv);
    expect(await mode(k.priv)).toBe(0o600);
    expect(await mode(k.pub)).toBe(0o644);
    expect(await mode(k.dir)).toBe(0o700);
    expect(await readFile(k.pub, 'utf8')).toBe(first.publicKeyPem);
    expect(keyIdOf(await readFile(k.priv))).toBe(first.keyId);
    expect(log.lines).toEqual([`info device key: made ${first.keyId} in ${k.dir}`]);

    for (let i = 0; i < 3; i++) {
      const again = await loadOrCreateDeviceKey(root, { logger: log });
      expect(again.created).toBe(false);
      expect(again.keyId).toBe(first.keyId);
      expect(again.publicKeyPem).toBe(first.publicKeyPem);
    }
    expect(log.lines).toHaveLength(1);
    expect((await readdir(k.dir)).sort()).toEqual(['device.key', 'device.pub']);
  });

  it('derives the public half from the private key: a missing or foreign device.pub is rewritten, never trusted', async () => {
    const first = await loadOrCreateDeviceKey(root);
    const k = keys(root);
    // What a kill -9 between the two halves leaves: the private key alone.
    await unlink(k.pub);
    const log = recordingLogger();
    const back = await loadOrCreateDeviceKey(root, { logger: log });
    expect([back.keyId, back.created]).toEqual([first.keyId, false]);
    expect(await readFile(k.pub, 'utf8')).toBe(first.publicKeyPem);
    expect(log.lines).toEqual([`warn device key: ${k.pub} was missing; written again from the private key`]);

    // A device.pub of some other key (edited, or restored from another device's backup) does not change the key.
    await writeFile(k.pub, generateKeyPair().publicKeyPem);
    const same = await loadOrCreateDeviceKey(root);
    expect(same.keyId).toBe(first.keyId);
    expect(await readFile(k.pub, 'utf8')).toBe(first.publicKeyPem);
  });

  it('after a crash at any step of the first write, loads a key whose files agree and leaves no temporary file', async () => {
    const pair = generateKeyPair();
    // Each state a kill can leave while writeKeyPair runs: temporary private file only; private linked but its
    // temporary name not yet removed; private only; private and a temporary public file.
    const states: Array<[string, Record<string, string>]> = [
      ['temporary private only', { '.device.key.tmp-0a0a0a0a0a0a': pair.privateKeyPem }],
      ['private linked, temporary left', { 'device.key': pair.privateKeyPem, '.device.key.tmp-0b0b0b0b0b0b': pair.privateKeyPem }],
      ['private only', { 'device.key': pair.privateKeyPem }],
      ['private and temporary public', { 'device.key': pair.privateKeyPem, '.device.pub.tmp-0c0c0c0c0c0c': pair.publicKeyPem.slice(0, 20) }],
    ];
    for (const [label, files] of states) {
      const dataDir = join(root, label.replace(/\W+/g, '-'));
      const k = keys(dataDir);
      await mkdir(k.dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) await writeFile(join(k.dir, name), text, { mode: 0o600 });
      const key = await loadOrCreateDeviceKey(dataDir);
      // A private key that made it to its real name is kept; one that did not is made anew.
      expect(key.keyId === pair.keyId, label).toBe('device.key' in files);
      expect(keyIdOf(await readFile(k.pub, 'utf8')), label).toBe(key.keyId);
      expect(keyIdOf(await readFile(k.priv)), label).toBe(key.keyId);
      expect((await readdir(k.dir)).sort(), label).toEqual(['device.key', 'device.pub']);
    }
  });

  it('survives SIGKILL at random moments of making keys: every folder then loads, its two files agreeing', async () => {
    const writer = fileURLToPath(new URL('./fixtures/agent/device-key-writer.ts', import.meta.url));
    const made: string[] = [];
    for (let run = 0; run < 3; run++) {
      const runRoot = join(root, `run${run}`);
      const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', writer, runRoot], { stdio: ['ignore', 'pipe', 'inherit'] });
      const target = 3 + Math.floor(Math.random() * 20);
      await new Promise<void>((ok, fail) => {
        let seen = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          if (seen.split('\n').length > target) ok();
        });
        child.once('exit', (code) => fail(new Error(`writer exited early with ${code}`)));
      });
      // Not at a line boundary: the writer is in the middle of the next folder's key.
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      for (const d of await readdir(runRoot)) made.push(join(runRoot, d));
    }
    expect(made.length).toBeGreaterThan(9);
    for (const dataDir of made) {
      const key = await loadOrCreateDeviceKey(dataDir);
      const k = keys(dataDir);
      expect(keyIdOf(await readFile(k.pub, 'utf8')), dataDir).toBe(key.keyId);
      expect((await readdir(k.dir)).sort(), dataDir).toEqual(['device.key', 'device.pub']);
      expect((await loadOrCreateDeviceKey(dataDir)).keyId, dataDir).toBe(key.keyId);
    }
  }, 60_000);

  it('refuses a corrupt private key at start, naming the file, and leaves it as it was', async () => {
    await loadOrCreateDeviceKey(root);
    const k = keys(root);
    for (const bad of ['not a key\n', '', generateKeyPair().publicKeyPem]) {
      await writeFile(k.priv, bad);
      const pubBefore = await readFile(k.pub, 'utf8');
      const err = await refusal(root);
      expect(err.message).toContain(`${k.priv} is not a usable Ed25519 private key`);
      expect(err.message).toMatch(/does not replace it.*kd-fleet devices accept-key/);
      // Not replaced: the bytes are the operator's to look at, and the fleet still pins the old public key.
      expect(await readFile(k.priv, 'utf8')).toBe(bad);
      expect(await readFile(k.pub, 'utf8')).toBe(pubBefore);
    }
    // A folder where the key file should be is refused the same way.
    await rm(k.priv);
    await mkdir(k.priv);
    expect((await refusal(root)).message).toContain(`${k.priv}: cannot read the device key`);
  });

  it('makes a new key only where there is no private key, even beside a stale device.pub', async () => {
    const first = await loadOrCreateDeviceKey(root);
    const k = keys(root);
    await rm(k.priv);
    const second = await loadOrCreateDeviceKey(root);
    expect(second.created).toBe(true);
    expect(second.keyId).not.toBe(first.keyId);
    expect(await readFile(k.pub, 'utf8')).toBe(second.publicKeyPem);
  });

  it('narrows a private key readable by others to 0600, with a warning', async () => {
    await loadOrCreateDeviceKey(root);
    const k = keys(root);
    await chmod(k.priv, 0o644);
    const log = recordingLogger();
    await loadOrCreateDeviceKey(root, { logger: log });
    expect(await mode(k.priv)).toBe(0o600);
    expect(log.lines).toEqual([`warn device key: ${k.priv} was readable by others; its mode is now 0600`]);
  });
});

describe('verifyOwnPackage', () => {
  async function pkg(dir: string, privateKey: DeviceKey['privateKey'] | string): Promise<string> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'model.onnx'), Buffer.from('not really a model, but hashed like one'));
    await buildPackage({
      dir, name: 'shapes', version: '1.0.1-adapt.1', task: 'detect', createdAt: '2026-11-01T12:00:00Z',
      input: { name: 'images', shape: [1, 3, 64, 64], layout: 'NCHW', dtype: 'float32', normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, letterbox: { color: [114, 114, 114], auto: false, stride: 32 } },
      output: { name: 'output0', layout: 'yolov5-decoded', shape: [1, 252, 7] },
      names: ['a', 'b'], strides: [8, 16, 32], anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
      privateKey,
    });
    return dir;
  }

  it('accepts a package signed by the device key, and only by it', async () => {
    const device = await loadOrCreateDeviceKey(join(root, 'agent'));
    const own = await pkg(join(root, 'own'), device.privateKey);
    const verified = await verifyOwnPackage(own, device);
    expect(verified.keyId).toBe(device.keyId);
    expect(verified.manifest.version).toBe('1.0.1-adapt.1');

    // A fleet-signed package is not the device's own: refused as any untrusted key is.
    const fleet = generateKeyPair();
    const foreign = await pkg(join(root, 'fleet'), fleet.privateKeyPem);
    await expect(verifyOwnPackage(foreign, device)).rejects.toMatchObject({
      code: 'PACKAGE_KEY_UNTRUSTED', message: `the manifest is signed by key ${fleet.keyId}, which is not among the 1 trusted key(s)`,
    });
    // And the device's package does not verify against another device's key.
    const other = await loadOrCreateDeviceKey(join(root, 'other-agent'));
    await expect(verifyOwnPackage(own, other)).rejects.toMatchObject({ code: 'PACKAGE_KEY_UNTRUSTED' });
    // Tampering after signing is caught like in a deploy.
    await writeFile(join(own, 'model.onnx'), Buffer.from('not really a model, but hashed like onE'));
    await expect(verifyOwnPackage(own, device)).rejects.toMatchObject({ code: 'PACKAGE_HASH_MISMATCH' });
  });

  it('checks its key argument', async () => {
    await expect(verifyOwnPackage(root, undefined as never)).rejects.toThrow(TypeError);
    const device = await loadOrCreateDeviceKey(root);
    await expect(verifyOwnPackage(root, { publicKey: device.privateKey })).rejects.toThrow(/deviceKey must be the device key/);
  });
});

