import { createHash, sign } from 'node:crypto';
import { appendFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPackage, writeManifest } from '../src/package/build.js';
import { PackageError } from '../src/package/errors.js';
import { generateKeyPair, toPrivateKey, type KeyPair } from '../src/package/keys.js';
import { manifestRole, type Manifest } from '../src/package/manifest.js';
import { signingPayload, signManifest } from '../src/package/sign.js';
import { extractTar } from '../src/package/tar-extract.js';
import { readTar } from '../src/package/tar-read.js';
import { packDirectory } from '../src/package/tar-write.js';
import { verifyPackage } from '../src/package/verify.js';
import { detectorOptions, fakeBytes, rawTar, useTempDirs, writePackageFiles } from './package-fixture.js';

const tempDir = useTempDirs();

let oldKey: KeyPair;
let newKey: KeyPair;
let strangerKey: KeyPair;
beforeAll(() => {
  oldKey = generateKeyPair();
  newKey = generateKeyPair();
  strangerKey = generateKeyPair();
});

/** A signed detector package in a fresh directory. */
async function signedPackage(key: KeyPair = oldKey): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(await tempDir(), 'pkg');
  await mkdir(dir);
  await writePackageFiles(dir);
  const manifest = await buildPackage({ ...detectorOptions(dir), privateKey: key.privateKeyPem });
  return { dir, manifest };
}

/** A signed teacher package that carries its trainable weights as weights/model.kdw. */
async function signedTeacher(): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(await tempDir(), 'teacher');
  await mkdir(join(dir, 'weights'), { recursive: true });
  await writePackageFiles(dir);
  await writeFile(join(dir, 'weights', 'model.kdw'), fakeBytes(900, 4));
  const manifest = await buildPackage({
    ...detectorOptions(dir), role: 'teacher', weights: { path: 'weights/model.kdw', format: 'kdw' }, privateKey: oldKey.privateKeyPem,
  });
  return { dir, manifest };
}

const readManifest = async (dir: string): Promise<Record<string, any>> => JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
const writeJson = (dir: string, json: unknown): Promise<void> => writeFile(join(dir, 'manifest.json'), JSON.stringify(json, null, 2));

/** Sign any JSON the way signManifest does, without validating it first. */
function forceSign(json: Record<string, unknown>, key: KeyPair): Record<string, unknown> {
  const value = sign(null, signingPayload(json), toPrivateKey(key.privateKeyPem)).toString('base64');
  return { ...json, signature: { algorithm: 'ed25519', keyId: key.keyId, value } };
}

async function refusal(p: Promise<unknown>): Promise<PackageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(PackageError);
    return err as PackageError;
  }
  throw new Error('verifyPackage accepted the package');
}

const trusted = { get trustedKeys() { return [oldKey.publicKeyPem]; } };

describe('buildPackage', () => {
  it('lists every file with its hash and size, finds the models, TensorRT files and val set, and signs', async () => {
    const { dir, manifest } = await signedPackage();
    expect(manifest.files.map((f) => f.path)).toEqual(['calib.cache', 'model.int8.onnx', 'model.onnx', 'trt-plan.json', 'val/images/a.jpg', 'val/labels/a.txt']);
    const model = await readFile(join(dir, 'model.onnx'));
    expect(manifest.files[2]).toEqual({ path: 'model.onnx', sha256: createHash('sha256').update(model).digest('hex'), size: model.length });
    expect(manifest.models).toEqual([
      { file: 'model.int8.onnx', precision: 'int8', format: 'onnx' },
      { file: 'model.onnx', precision: 'fp32', format: 'onnx', default: true },
    ]);
    expect(manifest.precision).toBe('fp32');
    expect(manifest.tensorrt).toEqual({ plan: 'trt-plan.json', calibCache: 'calib.cache' });
    expect(manifest.val).toEqual({ images: 'val/images', labels: 'val/labels' });
    expect(manifest.signature?.keyId).toBe(oldKey.keyId);
    expect(await readManifest(dir)).toEqual(manifest);
  });

  it('re-building replaces manifest.json rather than listing it', async () => {
    const { dir } = await signedPackage();
    const again = await buildPackage({ ...detectorOptions(dir), version: '1.2.1', defaultModel: 'model.int8.onnx', privateKey: oldKey.privateKeyPem });
    expect(again.files.some((f) => f.path === 'manifest.json')).toBe(false);
    expect(again.precision).toBe('int8');
    expect((await verifyPackage(dir, trusted)).manifest.version).toBe('1.2.1');
  });

  it('writes role and weights when given, and no role field for a serving model', async () => {
    const { dir, manifest } = await signedTeacher();
    expect(manifest.role).toBe('teacher');
    expect(manifest.weights).toEqual({ path: 'weights/model.kdw', format: 'kdw' });
    expect(manifest.files.find((f) => f.path === 'weights/model.kdw')).toMatchObject({ size: 900 });
    expect(await readManifest(dir)).toMatchObject({ role: 'teacher', weights: { path: 'weights/model.kdw', format: 'kdw' } });

    const served = await buildPackage({ ...detectorOptions(dir), role: 'model', weights: { path: 'weights/model.kdw', format: 'kdw' } });
    expect('role' in served).toBe(false);
    expect('role' in (await readManifest(dir))).toBe(false);
  });

  it('refuses weights that are not a file of the package, naming the field', async () => {
    const dir = await tempDir();
    await writePackageFiles(dir);
    await expect(buildPackage({ ...detectorOptions(dir), weights: { path: 'weights/model.kdw', format: 'kdw' } }))
      .rejects.toMatchObject({ code: 'PACKAGE_MANIFEST_INVALID', field: 'weights.path' });
  });

  it('names the faulty option', async () => {
    const dir = await tempDir();
    await writePackageFiles(dir);
    await expect(buildPackage({ ...detectorOptions(dir), version: 'v1' })).rejects.toMatchObject({ code: 'PACKAGE_MANIFEST_INVALID', field: 'version' });
    const empty = await tempDir();
    await expect(buildPackage(detectorOptions(empty))).rejects.toMatchObject({ code: 'PACKAGE_MANIFEST_INVALID', field: 'models' });
  });
});

describe('verifyPackage', () => {
  it('accepts a signed package as a directory and as a tar', async () => {
    const { dir, manifest } = await signedPackage();
    const fromDir = await verifyPackage(dir, trusted);
    expect(fromDir).toMatchObject({ manifest, keyId: oldKey.keyId, kind: 'directory' });
    expect(fromDir.files).toEqual(manifest.files);

    const tarPath = join(dir, '..', 'pkg.tar');
    await packDirectory(dir, tarPath);
    const fromTar = await verifyPackage(tarPath, { trustedKeys: [oldKey.publicKeyPem], maxFileBytes: 3000, maxTotalBytes: 10_000 });
    expect(fromTar).toMatchObject({ manifest, keyId: oldKey.keyId, kind: 'tar' });

    const out = join(dir, '..', 'extracted');
    await extractTar(tarPath, out);
    expect((await verifyPackage(out, trusted)).manifest).toEqual(manifest);
  });

  it('accepts a teacher package with weights, as a directory and as a tar', async () => {
    const { dir, manifest } = await signedTeacher();
    // Refused unless asked for: whatever serves what it verifies never gets a teacher.
    expect(await refusal(verifyPackage(dir, trusted))).toMatchObject({ code: 'PACKAGE_ROLE_UNEXPECTED', field: 'role' });
    const teachers = { trustedKeys: [oldKey.publicKeyPem], roles: ['teacher'] as const };
    const v = await verifyPackage(dir, teachers);
    expect(manifestRole(v.manifest)).toBe('teacher');
    expect(v.manifest.weights?.path).toBe('weights/model.kdw');
    expect(v.files.map((f) => f.path)).toContain('weights/model.kdw');
    const tarPath = join(dir, '..', 'teacher.tar');
    await packDirectory(dir, tarPath);
    expect((await verifyPackage(tarPath, teachers)).manifest).toEqual(manifest);
  });

  it('verifies a manifest from before roles and weights as a serving model', async () => {
    const { dir } = await signedPackage();
    const json = await readManifest(dir);
    expect('role' in json || 'weights' in json).toBe(false);
    const v = await verifyPackage(dir, trusted);
    expect(manifestRole(v.manifest)).toBe('model');
    expect((await refusal(verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem], roles: ['teacher'] }))).code).toBe('PACKAGE_ROLE_UNEXPECTED');
    expect(v.manifest.weights).toBeUndefined();
  });

  it.each<[string, (dir: string) => Promise<void>, string]>([
    ['a changed byte of the weights', async (dir) => {
      const path = join(dir, 'weights', 'model.kdw');
      const bytes = await readFile(path);
      bytes[100] ^= 0x01;
      await writeFile(path, bytes);
    }, 'PACKAGE_HASH_MISMATCH'],
    ['a teacher turned into a serving model under the old signature', async (dir) => {
      const json = await readManifest(dir);
      delete json.role;
      await writeJson(dir, json);
    }, 'PACKAGE_SIGNATURE_INVALID'],
    ['weights pointed at another file under the old signature', async (dir) => {
      const json = await readManifest(dir);
      json.weights.path = 'weights/other.kdw';
      await writeJson(dir, json);
    }, 'PACKAGE_SIGNATURE_INVALID'],
    ['signed weights that are not a listed file', async (dir) => {
      const json = await readManifest(dir);
      json.weights.path = 'weights/other.kdw';
      await writeJson(dir, forceSign(json, oldKey));
    }, 'PACKAGE_MANIFEST_INVALID'],
  ])('refuses %s in a teacher package', async (_, tamper, code) => {
    const { dir } = await signedTeacher();
    await tamper(dir);
    expect((await refusal(verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem], roles: ['model', 'teacher'] }))).code).toBe(code);
  });

  it('refuses a path where there is no package with PACKAGE_NOT_FOUND', async () => {
    const { dir } = await signedPackage();
    await expect(verifyPackage(join(dir, '..', 'no-such.tar'), trusted)).rejects.toMatchObject({ code: 'PACKAGE_NOT_FOUND' });
  });

  it('accepts a package signed by either of two pinned keys (rotation)', async () => {
    const { dir } = await signedPackage(newKey);
    const result = await verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem, newKey.publicKeyPem] });
    expect(result.keyId).toBe(newKey.keyId);
    expect((await refusal(verifyPackage(dir, trusted))).code).toBe('PACKAGE_KEY_UNTRUSTED');
    // Re-signing by the fleet with the old key keeps the same content valid under it.
    await writeManifest(dir, signManifest(await readManifest(dir) as Manifest, oldKey.privateKeyPem));
    expect((await verifyPackage(dir, trusted)).keyId).toBe(oldKey.keyId);
  });

  it('does not depend on how manifest.json is formatted', async () => {
    const { dir } = await signedPackage();
    const json = await readManifest(dir);
    const reordered = Object.fromEntries(Object.entries(json).reverse());
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(reordered));
    expect((await verifyPackage(dir, trusted)).keyId).toBe(oldKey.keyId);
  });

  it.each<[string, (dir: string) => Promise<void>, string]>([
    ['a changed byte of the model', async (dir) => {
      const path = join(dir, 'model.onnx');
      const bytes = await readFile(path);
      bytes[1234] ^= 0x01;
      await writeFile(path, bytes);
    }, 'PACKAGE_HASH_MISMATCH'],
    ['a grown file', (dir) => appendFile(join(dir, 'val/labels/a.txt'), '1 0.1 0.1 0.1 0.1\n'), 'PACKAGE_SIZE_MISMATCH'],
    ['a changed version under the old signature', async (dir) => {
      const json = await readManifest(dir);
      json.version = '9.0.0';
      await writeJson(dir, json);
    }, 'PACKAGE_SIGNATURE_INVALID'],
    ['a changed hash under the old signature', async (dir) => {
      const json = await readManifest(dir);
      json.files[0].sha256 = 'f'.repeat(64);
      await writeJson(dir, json);
    }, 'PACKAGE_SIGNATURE_INVALID'],
    ['a forged signature value', async (dir) => {
      const json = await readManifest(dir);
      const sig = Buffer.from(json.signature.value, 'base64');
      sig[0] ^= 1;
      json.signature.value = sig.toString('base64');
      await writeJson(dir, json);
    }, 'PACKAGE_SIGNATURE_INVALID'],
    ['a malformed signature', async (dir) => {
      const json = await readManifest(dir);
      json.signature.algorithm = 'rsa-pss';
      await writeJson(dir, json);
    }, 'PACKAGE_SIGNATURE_INVALID'],
    ['an unlisted file', (dir) => writeFile(join(dir, 'val/images/extra.jpg'), 'x'), 'PACKAGE_FILE_UNLISTED'],
    ['a missing file', (dir) => rm(join(dir, 'calib.cache')), 'PACKAGE_FILE_MISSING'],
    ['a missing manifest', (dir) => rm(join(dir, 'manifest.json')), 'PACKAGE_FILE_MISSING'],
    ['no signature', async (dir) => {
      const json = await readManifest(dir);
      delete json.signature;
      await writeJson(dir, json);
    }, 'PACKAGE_UNSIGNED'],
    ['a signature by an untrusted key', async (dir) => {
      await writeManifest(dir, signManifest(await readManifest(dir) as Manifest, strangerKey.privateKeyPem));
    }, 'PACKAGE_KEY_UNTRUSTED'],
    ['an unknown manifestVersion under a valid signature', async (dir) => {
      const json = await readManifest(dir);
      await writeJson(dir, forceSign({ ...json, manifestVersion: 2 }, oldKey));
    }, 'PACKAGE_MANIFEST_VERSION'],
    ['an unknown manifestVersion under the old signature', async (dir) => {
      const json = await readManifest(dir);
      json.manifestVersion = 2;
      await writeJson(dir, json);
    }, 'PACKAGE_MANIFEST_VERSION'],
    ['a signed but invalid manifest', async (dir) => {
      const json = await readManifest(dir);
      await writeJson(dir, forceSign({ ...json, task: 'segment' }, oldKey));
    }, 'PACKAGE_MANIFEST_INVALID'],
    ['manifest.json that is not JSON', (dir) => writeFile(join(dir, 'manifest.json'), '{"manifestVersion": 1,'), 'PACKAGE_MANIFEST_INVALID'],
    ['a signed ../ path', async (dir) => {
      const json = await readManifest(dir);
      json.files[0].path = '../../etc/passwd';
      await writeJson(dir, forceSign(json, oldKey));
    }, 'PACKAGE_PATH_ESCAPE'],
    ['a signed absolute path', async (dir) => {
      const json = await readManifest(dir);
      json.files[0].path = '/etc/passwd';
      await writeJson(dir, forceSign(json, oldKey));
    }, 'PACKAGE_PATH_ESCAPE'],
    ['a symlink leading outside', async (dir) => {
      await rm(join(dir, 'calib.cache'));
      await symlink('/etc/hostname', join(dir, 'calib.cache'));
    }, 'PACKAGE_PATH_ESCAPE'],
    ['a symlinked directory leading outside', async (dir) => {
      await rm(join(dir, 'val/labels'), { recursive: true });
      await symlink('/etc', join(dir, 'val/labels'));
    }, 'PACKAGE_PATH_ESCAPE'],
    ['a symlink inside the package', async (dir) => {
      await rm(join(dir, 'calib.cache'));
      await symlink('trt-plan.json', join(dir, 'calib.cache'));
    }, 'PACKAGE_FILE_UNSUPPORTED'],
  ])('refuses %s', async (_, tamper, code) => {
    const { dir } = await signedPackage();
    await tamper(dir);
    const err = await refusal(verifyPackage(dir, trusted));
    expect(err.code).toBe(code);
  });

  it('refuses files past the size limits with PACKAGE_FILE_TOO_LARGE', async () => {
    const { dir } = await signedPackage();
    const tooBig = await refusal(verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem], maxFileBytes: 2999 }));
    expect(tooBig).toMatchObject({ code: 'PACKAGE_FILE_TOO_LARGE', path: 'model.onnx' });
    expect((await refusal(verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem], maxTotalBytes: 4000 }))).code).toBe('PACKAGE_FILE_TOO_LARGE');
    expect((await refusal(verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem], maxManifestBytes: 100 }))).code).toBe('PACKAGE_FILE_TOO_LARGE');
  });

  it('refuses a tampered, corrupted or truncated tar', async () => {
    const { dir } = await signedPackage();
    const tarPath = join(dir, '..', 'pkg.tar');
    await packDirectory(dir, tarPath);
    const good = await readFile(tarPath);
    const entries = await readTar(good);
    const model = entries.find((e) => e.path === 'model.onnx')!;

    const cases: [string, Buffer][] = [];
    const flipped = Buffer.from(good);
    flipped[model.dataOffset + 10] ^= 0xff;
    cases.push(['PACKAGE_HASH_MISMATCH', flipped]);
    const badHeader = Buffer.from(good);
    badHeader[model.dataOffset - 512 + 3] ^= 0x01; // a letter of the name, so the checksum no longer holds
    cases.push(['PACKAGE_TAR_CHECKSUM', badHeader]);
    cases.push(['PACKAGE_TAR_TRUNCATED', good.subarray(0, model.dataOffset + 1000)]);
    cases.push(['PACKAGE_TAR_TRUNCATED', good.subarray(0, good.length - 1024)]);
    for (const [code, bytes] of cases) {
      await writeFile(tarPath, bytes);
      expect((await refusal(verifyPackage(tarPath, trusted))).code, code).toBe(code);
    }
  });

  it('refuses a tar with a ../ entry or an unlisted entry', async () => {
    const { dir } = await signedPackage();
    const tarPath = join(dir, '..', 'pkg.tar');
    await packDirectory(dir, tarPath);
    const good = (await readFile(tarPath)).subarray(0, -1024); // drop the end blocks, then add an entry
    const withEntry = (path: string): Buffer => Buffer.concat([good, rawTar([{ path, data: Buffer.from('evil') }])]);
    await writeFile(tarPath, withEntry('../../.bashrc'));
    expect((await refusal(verifyPackage(tarPath, trusted))).code).toBe('PACKAGE_PATH_ESCAPE');
    await writeFile(tarPath, withEntry('val/images/extra.jpg'));
    expect((await refusal(verifyPackage(tarPath, trusted))).code).toBe('PACKAGE_FILE_UNLISTED');
    await writeFile(tarPath, withEntry('model.onnx'));
    expect((await refusal(verifyPackage(tarPath, trusted))).code).toBe('PACKAGE_TAR_DUPLICATE');
  });

  it('checks its arguments', async () => {
    const { dir } = await signedPackage();
    await expect(verifyPackage(dir, { trustedKeys: [] })).rejects.toThrow(RangeError);
    await expect(verifyPackage(dir, { trustedKeys: ['not a key'] })).rejects.toThrow(/trustedKeys\[0\]/);
    await expect(verifyPackage(dir, { trustedKeys: [oldKey.publicKeyPem], maxFileBytes: -1 })).rejects.toThrow(/maxFileBytes/);
  });
});
