import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackageError } from '../src/package/errors.js';
import { extractTar } from '../src/package/tar-extract.js';
import { encodeTarHeader, splitUstarPath, TAR_BLOCK } from '../src/package/tar-header.js';
import { readTar, TarReader } from '../src/package/tar-read.js';
import { packDirectory } from '../src/package/tar-write.js';
import { fakeBytes, rawHeader, rawTar, useTempDirs, writePackageFiles } from './package-fixture.js';

const tempDir = useTempDirs();

const hasTar = ((): boolean => {
  try {
    execFileSync('tar', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

async function refusal(p: Promise<unknown>): Promise<PackageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(PackageError);
    return err as PackageError;
  }
  throw new Error('expected a refusal');
}

// 130 bytes: too long for the 100-byte name field, so it needs the ustar prefix.
const LONG = `val/images/${'d'.repeat(60)}/${'f'.repeat(54)}.jpg`;

async function sampleDir(): Promise<string> {
  const dir = join(await tempDir(), 'pkg');
  await mkdir(dir);
  await writePackageFiles(dir);
  await writeFile(join(dir, 'manifest.json'), '{"createdAt":"2026-05-01T12:00:00Z"}\n');
  await mkdir(join(dir, 'val/images', 'd'.repeat(60)));
  await writeFile(join(dir, LONG), fakeBytes(513, 9));
  await writeFile(join(dir, 'empty.txt'), '');
  await writeFile(join(dir, 'run.sh'), '#!/bin/sh\n');
  await chmod(join(dir, 'run.sh'), 0o700);
  return dir;
}

describe('packDirectory and readTar', () => {
  it('round-trips a directory: manifest.json first, then sorted paths, normalised modes and mtime', async () => {
    const dir = await sampleDir();
    const tarPath = join(dir, '..', 'pkg.tar');
    const result = await packDirectory(dir, tarPath);
    const entries = await readTar(tarPath);
    expect(entries.map((e) => e.path)).toEqual([
      'manifest.json', 'calib.cache', 'empty.txt', 'model.int8.onnx', 'model.onnx', 'run.sh', 'trt-plan.json', 'val', 'val/images',
      'val/images/a.jpg', `val/images/${'d'.repeat(60)}`, LONG, 'val/labels', 'val/labels/a.txt',
    ]);
    expect(result.entries.map((e) => e.path)).toEqual(entries.map((e) => e.path));
    expect(result.size).toBe((await stat(tarPath)).size);
    for (const e of entries) {
      expect(e.mtime).toBe(Date.parse('2026-05-01T12:00:00Z') / 1000);
      expect(e.mode).toBe(e.type === 'directory' || e.path === 'run.sh' ? 0o755 : 0o644);
      if (e.type === 'file') expect(e.data.equals(await readFile(join(dir, e.path))), e.path).toBe(true);
    }
  });

  it('writes the same bytes whatever the files\' times and the order they were made in', async () => {
    const dir = await sampleDir();
    const a = join(dir, '..', 'a.tar');
    const b = join(dir, '..', 'b.tar');
    await packDirectory(dir, a);
    await utimes(join(dir, 'model.onnx'), 1000, 1000);
    await packDirectory(dir, b);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    await packDirectory(dir, b, { mtime: 0 });
    expect((await readTar(b)).every((e) => e.mtime === 0)).toBe(true);
  });

  it('refuses symlinks in the source directory, naming an escape for links that leave it', async () => {
    const dir = await sampleDir();
    await symlink('/etc/passwd', join(dir, 'passwd'));
    expect((await refusal(packDirectory(dir, join(dir, '..', 'x.tar')))).code).toBe('PACKAGE_PATH_ESCAPE');
    const dir2 = await sampleDir();
    await symlink('model.onnx', join(dir2, 'alias.onnx'));
    const err = await refusal(packDirectory(dir2, join(dir2, '..', 'y.tar')));
    expect(err.code).toBe('PACKAGE_FILE_UNSUPPORTED');
    expect(err.message).toMatch(/alias\.onnx is a symlink/);
    expect(await readdir(join(dir2, '..'))).not.toContain('y.tar');
  });

  it('refuses to write the archive inside the directory it packs', async () => {
    const dir = await sampleDir();
    await expect(packDirectory(dir, join(dir, 'self.tar'))).rejects.toThrow(RangeError);
  });

  it('splits long paths over the ustar prefix and refuses what cannot fit', () => {
    expect(splitUstarPath(LONG)).toEqual({ prefix: `val/images/${'d'.repeat(60)}`, name: `${'f'.repeat(54)}.jpg` });
    expect(splitUstarPath('a'.repeat(101))).toBeUndefined();
    expect(() => encodeTarHeader({ path: `${'p'.repeat(156)}/x`, type: 'file', mode: 0o644, size: 0, mtime: 0 })).toThrow(
      expect.objectContaining({ code: 'PACKAGE_TAR_UNSUPPORTED' }),
    );
  });

  it.skipIf(!hasTar)('writes archives GNU tar lists and extracts byte for byte', async () => {
    const dir = await sampleDir();
    const tarPath = join(dir, '..', 'pkg.tar');
    await packDirectory(dir, tarPath);
    const listing = execFileSync('tar', ['-tvf', tarPath], { encoding: 'utf8' });
    expect(listing).toContain(LONG);
    expect(listing).toMatch(/^-rw-r--r-- 0\/0 +3000 2026-05-01 \d\d:\d\d model\.onnx$/m);
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0/m);
    const out = join(dir, '..', 'gnu');
    await mkdir(out);
    execFileSync('tar', ['-xf', tarPath, '-C', out]);
    expect((await readFile(join(out, LONG))).equals(await readFile(join(dir, LONG)))).toBe(true);
    expect((await readFile(join(out, 'model.onnx'))).equals(await readFile(join(dir, 'model.onnx')))).toBe(true);
  });

  it.skipIf(!hasTar)('reads archives GNU tar writes with --format=ustar', async () => {
    const dir = await sampleDir();
    const tarPath = join(dir, '..', 'gnu.tar');
    execFileSync('tar', ['--format=ustar', '-cf', tarPath, '-C', dir, '.']);
    const entries = await readTar(tarPath);
    const files = entries.filter((e) => e.type === 'file');
    expect(files.map((e) => e.path).sort()).toEqual(
      ['calib.cache', 'empty.txt', 'manifest.json', 'model.int8.onnx', 'model.onnx', 'run.sh', 'trt-plan.json', LONG, 'val/images/a.jpg', 'val/labels/a.txt'].sort(),
    );
    for (const f of files) expect(f.data.equals(await readFile(join(dir, f.path))), f.path).toBe(true);
    // GNU tar's default (gnu) format is read too when it needs no extensions.
    execFileSync('tar', ['-cf', tarPath, '-C', dir, 'model.onnx']);
    expect((await readTar(tarPath)).map((e) => e.path)).toEqual(['model.onnx']);
  });
});

describe('reading hostile or damaged archives', () => {
  const ok = { path: 'model.onnx', data: fakeBytes(600) };

  it.each<[string, () => Buffer, string]>([
    ['a bad header checksum', () => { const t = rawTar([ok]); t[5] ^= 1; return t; }, 'PACKAGE_TAR_CHECKSUM'],
    ['a size field that is not octal', () => { const t = rawTar([ok]); t.write('00000009999', 124, 'latin1'); return fixSum(t, 0); }, 'PACKAGE_TAR_INVALID'],
    ['data cut short', () => rawTar([ok]).subarray(0, TAR_BLOCK + 300), 'PACKAGE_TAR_TRUNCATED'],
    ['a size past the end', () => Buffer.concat([rawHeader({ path: 'model.onnx', size: 1 << 20 }), Buffer.alloc(2 * TAR_BLOCK)]), 'PACKAGE_TAR_TRUNCATED'],
    ['no end-of-archive blocks', () => rawTar([ok]).subarray(0, 3 * TAR_BLOCK), 'PACKAGE_TAR_TRUNCATED'],
    ['a single end block', () => rawTar([ok]).subarray(0, 4 * TAR_BLOCK), 'PACKAGE_TAR_TRUNCATED'],
    ['a header cut short', () => rawTar([ok]).subarray(0, 100), 'PACKAGE_TAR_TRUNCATED'],
    ['a ../ entry', () => rawTar([ok, { path: '../evil.sh', data: Buffer.from('x') }]), 'PACKAGE_PATH_ESCAPE'],
    ['a nested .. entry', () => rawTar([{ path: 'val/../../evil', data: Buffer.from('x') }]), 'PACKAGE_PATH_ESCAPE'],
    ['an absolute entry', () => rawTar([{ path: '/etc/cron.d/evil', data: Buffer.from('x') }]), 'PACKAGE_PATH_ESCAPE'],
    ['a symlink out', () => rawTar([{ path: 'model.onnx', typeflag: '2', linkname: '../../etc/shadow' }]), 'PACKAGE_PATH_ESCAPE'],
    ['an absolute hard link', () => rawTar([{ path: 'model.onnx', typeflag: '1', linkname: '/etc/shadow' }]), 'PACKAGE_PATH_ESCAPE'],
    ['a symlink inside', () => rawTar([ok, { path: 'val/alias', typeflag: '2', linkname: '../model.onnx' }]), 'PACKAGE_TAR_UNSUPPORTED'],
    ['a device', () => rawTar([{ path: 'null', typeflag: '3' }]), 'PACKAGE_TAR_UNSUPPORTED'],
    ['a FIFO', () => rawTar([{ path: 'fifo', typeflag: '6' }]), 'PACKAGE_TAR_UNSUPPORTED'],
    ['a pax header', () => rawTar([{ path: 'PaxHeader', typeflag: 'x', data: Buffer.from('30 path=../../x\n') }, ok]), 'PACKAGE_TAR_UNSUPPORTED'],
    ['a duplicate entry', () => rawTar([ok, { path: 'model.onnx', data: Buffer.from('evil') }]), 'PACKAGE_TAR_DUPLICATE'],
    ['a duplicate spelled ./', () => rawTar([ok, { path: './model.onnx', data: Buffer.from('evil') }]), 'PACKAGE_TAR_DUPLICATE'],
    ['a file under a file', () => rawTar([ok, { path: 'model.onnx/x', data: Buffer.from('x') }]), 'PACKAGE_TAR_DUPLICATE'],
    ['a file where a directory was', () => rawTar([{ path: 'val/a', data: Buffer.from('x') }, { path: 'val', data: Buffer.from('x') }]), 'PACKAGE_TAR_DUPLICATE'],
    ['data after a lone zero block', () => Buffer.concat([Buffer.alloc(TAR_BLOCK), rawTar([ok])]), 'PACKAGE_TAR_INVALID'],
    ['a control character in a name', () => rawTar([{ path: 'a\u0001b', data: Buffer.from('x') }]), 'PACKAGE_TAR_INVALID'],
  ])('refuses %s', async (_, make, code) => {
    const bytes = make();
    expect((await refusal(readTar(bytes))).code).toBe(code);
    const dir = await tempDir();
    const file = join(dir, 'bad.tar');
    await writeFile(file, bytes);
    expect((await refusal(TarReader.open(file))).code).toBe(code);
    expect((await refusal(extractTar(file, join(dir, 'out')))).code).toBe(code);
    expect(await readdir(dir)).toEqual(['bad.tar']);
  });

  it('accepts ./-prefixed names and the ./ root entry', async () => {
    const entries = await readTar(rawTar([{ path: './', typeflag: '5' }, { path: './val/', typeflag: '5' }, { path: './val/a.txt', data: Buffer.from('hi') }]));
    expect(entries.map((e) => [e.path, e.type])).toEqual([['val', 'directory'], ['val/a.txt', 'file']]);
    expect(entries[1].data.toString()).toBe('hi');
  });

  it('accepts a header with the historic signed checksum', async () => {
    const t = rawTar([{ path: 'é.txt', data: Buffer.from('x') }]);
    let signed = 0;
    for (let i = 0; i < TAR_BLOCK; i++) signed += i >= 148 && i < 156 ? 32 : t[i] > 127 ? t[i] - 256 : t[i];
    t.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    expect((await readTar(t)).map((e) => e.path)).toEqual(['é.txt']);
  });
});

describe('extractTar', () => {
  it('extracts into a new directory and refuses an existing one', async () => {
    const dir = await sampleDir();
    const tarPath = join(dir, '..', 'pkg.tar');
    await packDirectory(dir, tarPath);
    const dest = join(dir, '..', 'store', 'pkg-1.2.0');
    const entries = await extractTar(tarPath, dest);
    expect(entries.filter((e) => e.type === 'file')).toHaveLength(10);
    expect((await readFile(join(dest, LONG))).equals(await readFile(join(dir, LONG)))).toBe(true);
    expect((await stat(join(dest, 'run.sh'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(dest, 'model.onnx'))).mode & 0o777).toBe(0o644);
    expect((await refusal(extractTar(tarPath, dest))).code).toBe('PACKAGE_DEST_EXISTS');
  });

  it('refuses entries past the size limits before writing anything', async () => {
    const dir = await tempDir();
    const bytes = rawTar([{ path: 'a.onnx', data: fakeBytes(2000) }, { path: 'b.onnx', data: fakeBytes(2000) }]);
    expect((await refusal(extractTar(bytes, join(dir, 'x'), { maxFileBytes: 1999 }))).code).toBe('PACKAGE_FILE_TOO_LARGE');
    expect((await refusal(extractTar(bytes, join(dir, 'x'), { maxTotalBytes: 3999 }))).code).toBe('PACKAGE_FILE_TOO_LARGE');
    expect(await readdir(dir)).toEqual([]);
    await extractTar(bytes, join(dir, 'x'), { maxFileBytes: 2000, maxTotalBytes: 4000 });
    expect(await readdir(join(dir, 'x'))).toEqual(['a.onnx', 'b.onnx']);
  });
});

/** Recompute the checksum of the header at block `index`. */
function fixSum(t: Buffer, index: number): Buffer {
  const block = t.subarray(index * TAR_BLOCK, (index + 1) * TAR_BLOCK);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return t;
}
