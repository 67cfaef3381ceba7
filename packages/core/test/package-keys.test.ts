import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKeyPair, keyIdOf, loadPrivateKey, loadPublicKey, writeKeyPair } from '../src/package/keys.js';
import { useTempDirs } from './package-fixture.js';

const tempDir = useTempDirs();

describe('keys', () => {
  it('generates an Ed25519 pair whose key id is the start of SHA-256 of the raw public key', () => {
    const pair = generateKeyPair();
    expect(pair.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(pair.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    // The SPKI DER of an Ed25519 key is a 12-byte prefix and the raw 32 bytes.
    const der = createPublicKey(pair.publicKeyPem).export({ type: 'spki', format: 'der' });
    expect(der.length).toBe(44);
    expect(pair.keyId).toBe(createHash('sha256').update(der.subarray(12)).digest('hex').slice(0, 16));
    expect(keyIdOf(pair.privateKeyPem)).toBe(pair.keyId);
    expect(generateKeyPair().keyId).not.toBe(pair.keyId);
  });

  it('loads keys from PEM text and from files, and they sign and verify', async () => {
    const dir = await tempDir();
    const pair = generateKeyPair();
    const paths = { privateKeyPath: join(dir, 'fleet.key'), publicKeyPath: join(dir, 'fleet.pub') };
    await writeKeyPair(pair, paths);
    expect((await stat(paths.privateKeyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.publicKeyPath)).mode & 0o777).toBe(0o644);
    expect(await readFile(paths.privateKeyPath, 'utf8')).toBe(pair.privateKeyPem);

    const priv = await loadPrivateKey(paths.privateKeyPath);
    const pub = await loadPublicKey(paths.publicKeyPath);
    expect(priv.type).toBe('private');
    expect(pub.type).toBe('public');
    const sig = sign(null, Buffer.from('hello'), priv);
    expect(verify(null, Buffer.from('hello'), pub, sig)).toBe(true);
    expect(verify(null, Buffer.from('hello'), await loadPublicKey(pair.publicKeyPem), sig)).toBe(true);
    // A private key yields its public half, so a signer can check its own output.
    expect(keyIdOf(await loadPublicKey(pair.privateKeyPem))).toBe(pair.keyId);
  });

  it('keeps existing key files unless told to overwrite', async () => {
    const dir = await tempDir();
    const paths = { privateKeyPath: join(dir, 'k'), publicKeyPath: join(dir, 'k.pub') };
    await writeKeyPair(generateKeyPair(), paths);
    const second = generateKeyPair();
    await expect(writeKeyPair(second, paths)).rejects.toMatchObject({ code: 'EEXIST' });
    expect((await readdir(dir)).sort()).toEqual(['k', 'k.pub']); // no temporary file left behind by the refusal
    await writeKeyPair(second, paths, { overwrite: true });
    expect(keyIdOf(await loadPublicKey(paths.publicKeyPath))).toBe(second.keyId);
    expect((await stat(paths.privateKeyPath)).mode & 0o777).toBe(0o600);
  });

  it('never shows a reader a key file that is there but not whole', async () => {
    const dir = await tempDir();
    const seen = new Set<string>();
    // Readers spin on the real names while the pairs are written: each look finds no file or the whole key.
    for (let i = 0; i < 40; i++) {
      const pair = generateKeyPair();
      const paths = { privateKeyPath: join(dir, `k${i}`), publicKeyPath: join(dir, `k${i}.pub`) };
      let done = false;
      const look = async (path: string, whole: string): Promise<void> => {
        while (!done) {
          const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
          if (text !== null) seen.add(text === whole ? 'whole' : `partial: ${JSON.stringify(text)}`);
        }
      };
      const readers = [look(paths.privateKeyPath, pair.privateKeyPem), look(paths.privateKeyPath, pair.privateKeyPem), look(paths.publicKeyPath, pair.publicKeyPem)];
      await writeKeyPair(pair, paths);
      done = true;
      await Promise.all(readers);
    }
    expect([...seen].filter((s) => s !== 'whole')).toEqual([]);
    // No temporary file is left beside the keys.
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('refuses keys that are not Ed25519 with PACKAGE_KEY_INVALID', async () => {
    const dir = await tempDir();
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expect(loadPublicKey(ec.publicKey.export({ type: 'spki', format: 'pem' }).toString())).rejects.toMatchObject({ code: 'PACKAGE_KEY_INVALID' });
    await expect(loadPrivateKey(ec.privateKey)).rejects.toMatchObject({ code: 'PACKAGE_KEY_INVALID' });
    await expect(loadPrivateKey(generateKeyPair().publicKeyPem)).rejects.toMatchObject({ code: 'PACKAGE_KEY_INVALID' });
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a key');
    await expect(loadPublicKey(junk)).rejects.toMatchObject({ code: 'PACKAGE_KEY_INVALID' });
    await expect(loadPublicKey(join(dir, 'absent.pem'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
