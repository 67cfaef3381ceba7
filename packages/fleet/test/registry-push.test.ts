import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packDirectory, parseMessage, toPublicKey, verifyManifestSignature } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../src/db/fleet-error.js';
import { PackageRegistry } from '../src/registry/package-registry.js';
import { makeTestPackage, migratedDb, repackWithManifest, tempDir, testKeys } from './registry-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let db: Database.Database;
const { trusted, other } = testKeys();
const trustedKeys = [trusted.publicKeyPem];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kd-fleet-registry-'));
  db = migratedDb(dir);
});
afterEach(async () => {
  db.close();
  await cleanup();
});

async function refusal(p: Promise<unknown>): Promise<FleetError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FleetError);
  return err as FleetError;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('PackageRegistry.push', () => {
  it('verifies, stores the tar under packages/<name>/<version>.tar and records it', async () => {
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0', trusted.privateKeyPem);
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data'), now: () => 1_700_000_000_000 });
    const record = await registry.push(pkg.tar, { trustedKeys });
    const bytes = await readFile(pkg.tar);
    expect(record).toMatchObject({
      name: 'pets', version: '1.0.0', sha256: sha256(bytes), size: bytes.length, keyId: trusted.keyId, pushedAt: 1_700_000_000_000,
      path: join(dir, 'data', 'packages', 'pets', '1.0.0.tar'),
    });
    expect(record.manifest.name).toBe('pets');
    expect(record.manifestJson).toBe(await readFile(join(pkg.dir, 'manifest.json'), 'utf8'));
    expect(sha256(await readFile(record.path))).toBe(record.sha256);
    // Only the stored tar is left in the packages folder: the incoming copy was renamed, not left behind.
    expect(await readdir(join(dir, 'data', 'packages'))).toEqual(['pets']);
    expect(registry.get('pets', '1.0.0')).toEqual(record);
    expect(registry.getBySha256(record.sha256)).toEqual(record);
    expect(registry.get('pets', '9.9.9')).toBeUndefined();
    // Another PackageRegistry over the same database (a restart) sees it.
    expect(new PackageRegistry(db, { dataDir: join(dir, 'data') }).list()).toEqual([record]);
  });

  it('is idempotent for the same bytes and refuses other bytes under the same version', async () => {
    let t = 1000;
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data'), now: () => t++ });
    const pkg = await makeTestPackage(join(dir, 'a'), 'pets', '1.0.0', trusted.privateKeyPem);
    const first = await registry.push(pkg.tar, { trustedKeys });
    expect(await registry.push(pkg.tar, { trustedKeys })).toEqual(first);

    const changed = await makeTestPackage(join(dir, 'b'), 'pets', '1.0.0', trusted.privateKeyPem, 32 * 1024);
    const err = await refusal(registry.push(changed.tar, { trustedKeys }));
    expect(err.code).toBe('FLEET_PACKAGE_EXISTS');
    expect(err.message).toContain(first.sha256);
    expect(sha256(await readFile(first.path))).toBe(first.sha256); // the stored tar is untouched
    expect(registry.list()).toHaveLength(1);
    expect((await readdir(join(dir, 'data', 'packages'))).filter((f) => f.startsWith('.incoming'))).toEqual([]);
  });

  it('refuses a package signed by an untrusted key, naming the core code', async () => {
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data') });
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0', other.privateKeyPem);
    const err = await refusal(registry.push(pkg.tar, { trustedKeys }));
    expect(err.code).toBe('FLEET_PACKAGE_REFUSED');
    expect(err.message).toMatch(/^PACKAGE_KEY_UNTRUSTED: /);
    expect(registry.list()).toEqual([]);
    // Trusting the other key too (rotation) lets it in.
    expect((await registry.push(pkg.tar, { trustedKeys: [trusted.publicKeyPem, other.publicKeyPem] })).keyId).toBe(other.keyId);
  });

  it('refuses an unsigned package', async () => {
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data') });
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0', trusted.privateKeyPem);
    const tar = await repackWithManifest(pkg, (m) => delete m.signature);
    const err = await refusal(registry.push(tar, { trustedKeys }));
    expect(err.code).toBe('FLEET_PACKAGE_REFUSED');
    expect(err.message).toMatch(/^PACKAGE_UNSIGNED: /);
  });

  it('refuses a tampered package: a file changed after signing, or a manifest edited', async () => {
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data') });
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0', trusted.privateKeyPem);
    const edited = await repackWithManifest(pkg, (m) => (m.names = ['cat', 'wolf']));
    expect((await refusal(registry.push(edited, { trustedKeys }))).message).toMatch(/^PACKAGE_SIGNATURE_INVALID: /);

    const pkg2 = await makeTestPackage(join(dir, 'src2'), 'pets', '1.0.1', trusted.privateKeyPem);
    const model = await readFile(join(pkg2.dir, 'model.onnx'));
    model[100] ^= 0xff;
    await writeFile(join(pkg2.dir, 'model.onnx'), model);
    await packDirectory(pkg2.dir, `${pkg2.dir}-tampered.tar`);
    const err = await refusal(registry.push(`${pkg2.dir}-tampered.tar`, { trustedKeys }));
    expect(err.message).toMatch(/^PACKAGE_HASH_MISMATCH: model\.onnx/);
    expect(registry.list()).toEqual([]);
  });

  it('refuses what is not a package tar', async () => {
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data') });
    expect((await refusal(registry.push(join(dir, 'missing.tar'), { trustedKeys }))).message).toMatch(/^PACKAGE_NOT_FOUND/);
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0', trusted.privateKeyPem);
    expect((await refusal(registry.push(pkg.dir, { trustedKeys }))).code).toBe('FLEET_PACKAGE_REFUSED');
    await writeFile(join(dir, 'junk.tar'), Buffer.alloc(1024, 7));
    expect((await refusal(registry.push(join(dir, 'junk.tar'), { trustedKeys }))).message).toMatch(/^PACKAGE_TAR_/);
    await expect(registry.push(pkg.tar, { trustedKeys: [] })).rejects.toThrow(RangeError);
  });
});

describe('PackageRegistry queries', () => {
  it('lists by name then newest version by semver precedence', async () => {
    const registry = new PackageRegistry(db, { dataDir: join(dir, 'data') });
    for (const [name, version] of [['pets', '1.2.0'], ['pets', '1.10.0'], ['birds', '0.1.0'], ['pets', '1.9.0'], ['pets', '2.0.0-rc.1']] as const) {
      await registry.push((await makeTestPackage(join(dir, 'src'), name, version, trusted.privateKeyPem, 4096)).tar, { trustedKeys });
    }
    expect(registry.list().map((r) => `${r.name}@${r.version}`)).toEqual(['birds@0.1.0', 'pets@2.0.0-rc.1', 'pets@1.10.0', 'pets@1.9.0', 'pets@1.2.0']);
  });
});

describe('PackageRegistry manifest publishing', () => {
  it('publishes the signed manifest retained on models/{name}/{version}/manifest, the version escaped', async () => {
    const sent: Array<{ topic: string; payload: string; options: unknown }> = [];
    const registry = new PackageRegistry(db, {
      dataDir: join(dir, 'data'), fleet: 'lab',
      publish: (topic, payload, options) => void sent.push({ topic, payload: payload.toString(), options }),
    });
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0+b.7', trusted.privateKeyPem);
    const record = await registry.push(pkg.tar, { trustedKeys });
    expect(record.path).toBe(join(dir, 'data', 'packages', 'pets', '1.0.0+b.7.tar'));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.topic).toBe('kd/v1/lab/models/pets/1.0.0%2Bb.7/manifest');
    expect(sent[0]!.options).toEqual({ qos: 1, retain: true });
    const manifest = parseMessage('manifest', sent[0]!.payload);
    expect(verifyManifestSignature(manifest, [toPublicKey(trusted.publicKeyPem)])).toBe(trusted.keyId);

    expect(await registry.publishManifests()).toBe(1);
    expect(sent).toHaveLength(2);
    await expect(registry.publishManifests('pets', '3.0.0')).rejects.toThrow(expect.objectContaining({ code: 'FLEET_PACKAGE_NOT_FOUND' }));
  });

  it('keeps a pushed package when publishing its manifest fails', async () => {
    const warnings: string[] = [];
    const registry = new PackageRegistry(db, {
      dataDir: join(dir, 'data'), fleet: 'lab',
      publish: async () => {
        throw new Error('broker down');
      },
      logger: { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} },
    });
    const pkg = await makeTestPackage(join(dir, 'src'), 'pets', '1.0.0', trusted.privateKeyPem);
    await registry.push(pkg.tar, { trustedKeys });
    expect(registry.get('pets', '1.0.0')).toBeDefined();
    expect(warnings.join('\n')).toContain('broker down');
  });

  it('checks its options', () => {
    expect(() => new PackageRegistry(db, { dataDir: '' })).toThrow(TypeError);
    expect(() => new PackageRegistry(db, { dataDir: dir, publish: () => {} })).toThrow(/fleet/);
    expect(() => new PackageRegistry(db, { dataDir: dir, fleet: 'bad fleet!', publish: () => {} })).toThrow(RangeError);
  });
});
