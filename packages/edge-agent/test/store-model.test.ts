import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractTar, generateKeyPair, verifyPackage } from '@kd-edge/core';
import { ModelStore } from '../src/store/model-store.js';
import { StoreError } from '../src/store/store-error.js';
import { parseVersionKey, versionKey } from '../src/store/version-key.js';
import { makeTestPackage, type TestPackage } from './store-helpers.js';

const keys = generateKeyPair();
let work: string;
let a: TestPackage;
let b: TestPackage;
let c: TestPackage;
let n = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'kd-store-'));
  a = await makeTestPackage(join(work, 'src'), 'pets', '1.0.0', keys.privateKeyPem, 4096);
  b = await makeTestPackage(join(work, 'src'), 'pets', '1.1.0', keys.privateKeyPem, 4096);
  c = await makeTestPackage(join(work, 'src'), 'pets', '1.2.0+build.7', keys.privateKeyPem, 4096);
});
afterAll(() => rm(work, { recursive: true, force: true }));

async function freshStore(): Promise<ModelStore> {
  return ModelStore.open(join(work, `store-${n++}`));
}

async function stage(store: ModelStore, pkg: TestPackage): Promise<string> {
  const staging = await store.stagingPath();
  await extractTar(pkg.tar, staging);
  return staging;
}

async function installed(store: ModelStore, pkg: TestPackage): Promise<string> {
  return (await store.install(await stage(store, pkg), pkg.info)).key;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  return (err as StoreError).code;
}

describe('version keys', () => {
  it('are name@version-sha8 and parse back, build metadata included', () => {
    const key = versionKey(c.info);
    expect(key).toBe(`pets@1.2.0+build.7-${c.info.sha256.slice(0, 8)}`);
    expect(parseVersionKey(key)).toEqual({ name: 'pets', version: '1.2.0+build.7', sha8: c.info.sha256.slice(0, 8) });
    expect(parseVersionKey('pets@notsemver-12345678')).toBeUndefined();
    expect(() => versionKey({ ...a.info, sha256: 'ABC' })).toThrow(/sha256/);
    expect(() => versionKey({ ...a.info, name: '../evil' })).toThrow(/name/);
  });
});

describe('ModelStore', () => {
  it('installs a verified package that still verifies in place, and activates it atomically', async () => {
    const store = await freshStore();
    expect(store.current()).toBeNull();
    const v = await store.install(await stage(store, a), a.info);
    expect(v.key).toBe(versionKey(a.info));
    expect(v.info).toMatchObject(a.info);
    const verified = await verifyPackage(v.dir, { trustedKeys: [keys.publicKeyPem] });
    expect(verified.manifest.version).toBe('1.0.0');
    expect(store.current()).toBeNull();
    await store.activate(v.key);
    expect(store.current()?.key).toBe(v.key);
    expect(store.previous()).toBeNull();
    const onDisk = JSON.parse(await readFile(store.statePath, 'utf8')) as { current: string; previous: null };
    expect(onDisk).toMatchObject({ current: v.key, previous: null });
    expect(await readdir(store.stagingRoot)).toEqual([]);
    expect((await readdir(store.root)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('is idempotent on a second install of the same package and refuses a different package under the same key', async () => {
    const store = await freshStore();
    const first = await store.install(await stage(store, a), a.info);
    const again = await store.install(await stage(store, a), a.info);
    expect(again).toEqual(first);
    expect(await readdir(store.stagingRoot)).toEqual([]);
    const forged = { ...a.info, sha256: `${a.info.sha256.slice(0, 8)}${'0'.repeat(56)}` };
    expect(await codeOf(store.install(await stage(store, a), forged))).toBe('STORE_CONFLICT');
  });

  it('refuses a staging folder whose manifest names another version, and one without a manifest', async () => {
    const store = await freshStore();
    expect(await codeOf(store.install(await stage(store, a), b.info))).toBe('STORE_INFO_MISMATCH');
    const empty = await store.stagingPath();
    await mkdir(empty);
    expect(await codeOf(store.install(empty, a.info))).toBe('STORE_STAGING_INVALID');
    expect(await codeOf(store.activate(versionKey(b.info)))).toBe('STORE_NOT_INSTALLED');
  });

  it('moves current to previous on activate, swaps them on rollback, and says when there is nothing to roll back to', async () => {
    const store = await freshStore();
    expect(await codeOf(store.rollback())).toBe('STORE_NO_PREVIOUS');
    const ka = await installed(store, a);
    const kb = await installed(store, b);
    await store.activate(ka);
    expect(await codeOf(store.rollback())).toBe('STORE_NO_PREVIOUS');
    await store.activate(kb);
    await store.activate(kb); // no-op: previous must stay ka
    expect([store.current()?.key, store.previous()?.key]).toEqual([kb, ka]);
    expect((await store.rollback()).key).toBe(ka);
    expect([store.current()?.key, store.previous()?.key]).toEqual([ka, kb]);
    expect(store.state().history.map((h) => h.action)).toEqual(['activate', 'activate', 'rollback']);

    const reopened = await ModelStore.open(store.root);
    expect([reopened.current()?.key, reopened.previous()?.key]).toEqual([ka, kb]);
  });

  it('gc deletes what is neither current nor previous (marker first), keeps `keep` newest others and in-flight staging', async () => {
    const store = await freshStore();
    const ka = await installed(store, a);
    const kb = await installed(store, b);
    const kc = await installed(store, c);
    await store.activate(kb);
    await store.activate(kc);
    const pending = await store.stagingPath();
    await mkdir(pending);
    await writeFile(join(pending, 'x'), 'in flight');
    await mkdir(join(store.stagingRoot, 'stale'));
    expect(await store.gc({ keep: 1 })).toEqual([]);
    expect(await store.gc()).toEqual([ka]);
    expect(store.list().map((v) => v.key)).toEqual([kb, kc]);
    expect((await readdir(store.versionsDir)).sort()).toEqual([kb, `${kb}.complete`, kc, `${kc}.complete`].sort());
    expect(await readdir(store.stagingRoot)).toEqual([pending.slice(store.stagingRoot.length + 1)]);
    await store.releaseStaging(pending);
    expect(await readdir(store.stagingRoot)).toEqual([]);
    expect(() => store.gc({ keep: -1 })).toThrow(RangeError);
  });

  it('recover removes staging, temporary files, folders without markers and orphan markers', async () => {
    const store = await freshStore();
    const ka = await installed(store, a);
    await store.activate(ka);
    const torn = join(store.versionsDir, versionKey(b.info));
    await cp(b.dir, torn, { recursive: true }); // renamed in, marker never written
    await writeFile(join(store.versionsDir, `${versionKey(c.info)}.complete`), '{}');
    await writeFile(join(store.versionsDir, `.${ka}.complete.tmp-abc`), '{');
    await writeFile(join(store.root, '.state.json.tmp-abc'), '{');
    await mkdir(join(store.stagingRoot, 's-old'));
    const reopened = await ModelStore.open(store.root);
    expect((await readdir(store.versionsDir)).sort()).toEqual([ka, `${ka}.complete`]);
    expect(await readdir(store.stagingRoot)).toEqual([]);
    expect((await readdir(store.root)).sort()).toEqual(['downloads', 'staging', 'state.json', 'versions']);
    expect(reopened.current()?.key).toBe(ka);
    expect(reopened.list().map((v) => v.key)).toEqual([ka]);
  });

  it('falls back to previous when current is incomplete, then to null, and says so', async () => {
    const store = await freshStore();
    const ka = await installed(store, a);
    const kb = await installed(store, b);
    await store.activate(ka);
    await store.activate(kb);
    await rm(join(store.versionsDir, `${kb}.complete`));
    const warnings: string[] = [];
    const r1 = await ModelStore.open(store.root, { logger: { warn: (m) => warnings.push(m) } });
    expect([r1.current()?.key, r1.previous()]).toEqual([ka, null]);
    expect(warnings.join('\n')).toMatch(/current version .* missing or incomplete; falling back to/);
    expect(JSON.parse(await readFile(store.statePath, 'utf8'))).toMatchObject({ current: ka, previous: null });

    await rm(join(store.versionsDir, ka), { recursive: true });
    const r2 = await ModelStore.open(store.root);
    expect(r2.current()).toBeNull();
    expect(r2.state().history.at(-1)).toMatchObject({ action: 'recover', key: null, from: ka });
  });

  it('keeps a state.json that does not parse aside and starts empty', async () => {
    const store = await freshStore();
    await store.activate(await installed(store, a));
    await writeFile(store.statePath, '{"current": "pets@1.0.0-');
    const reopened = await ModelStore.open(store.root);
    const report = await reopened.recover();
    expect(report.repairs).toEqual([]);
    expect(reopened.current()).toBeNull();
    expect((await readdir(store.root)).some((f) => f.startsWith('state.json.corrupt-'))).toBe(true);
    expect(reopened.list()).toHaveLength(1);
  });

  it('installs the signed files unchanged: the version folder still verifies against pinned keys', async () => {
    const store = await freshStore();
    const ka = await installed(store, a);
    const dir = join(store.versionsDir, ka);
    await expect(verifyPackage(dir, { trustedKeys: [keys.publicKeyPem] })).resolves.toMatchObject({ manifest: { name: 'pets' } });
    await writeFile(join(dir, 'labels.txt'), 'tampered\n');
    await expect(verifyPackage(dir, { trustedKeys: [keys.publicKeyPem] })).rejects.toMatchObject({ code: 'PACKAGE_SIZE_MISMATCH' });
  });
});
