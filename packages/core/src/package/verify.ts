import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PackageError } from './errors.js';
import { hashFile, walkPackageDir } from './files.js';
import { toPublicKey, type KeyInput } from './keys.js';
import { checkSizeLimits, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_TOTAL_BYTES } from './limits.js';
import { checkManifestVersion, MANIFEST_FILE, manifestRole, PACKAGE_ROLES, parseManifest, type Manifest, type ManifestFile, type PackageRole } from './manifest.js';
import { verifyManifestSignature } from './sign.js';
import { TarReader } from './tar-read.js';

/** Options of {@link verifyPackage}. */
export interface VerifyOptions {
  /** The pinned public keys; several allow key rotation. At least one. */
  trustedKeys: readonly KeyInput[];
  /** Largest file allowed, in bytes (default 2 GiB). */
  maxFileBytes?: number;
  /** Largest sum of all files, in bytes (default 8 GiB). */
  maxTotalBytes?: number;
  /** Largest manifest.json, in bytes (default 4 MiB). */
  maxManifestBytes?: number;
  /**
   * The roles accepted (default `['model']`): a teacher package is refused unless the caller asks for
   * one, so code that serves what it verifies never serves a teacher.
   */
  roles?: readonly PackageRole[];
}

/** A package file whose size and SHA-256 matched the manifest. */
export interface VerifiedFile {
  path: string;
  size: number;
  sha256: string;
}

/** A package that passed every check. */
export interface VerifiedPackage {
  manifest: Manifest;
  /** Id of the trusted key that signed it. */
  keyId: string;
  files: VerifiedFile[];
  kind: 'directory' | 'tar';
  /** The absolute path that was verified. */
  path: string;
}

/** What verification needs from a directory or an archive. */
interface PackageSource {
  readManifest(maxBytes: number): Promise<Buffer>;
  /** Sizes of the regular files present, by package path. */
  listFiles(): Promise<Map<string, number>>;
  /** SHA-256 of a listed file whose size already matched. */
  hash(file: ManifestFile): Promise<string>;
  close(): Promise<void>;
}

function manifestMissing(): PackageError {
  return new PackageError('PACKAGE_FILE_MISSING', `the package has no ${MANIFEST_FILE}`, { path: MANIFEST_FILE });
}

function manifestTooLarge(size: number, max: number): PackageError {
  return new PackageError('PACKAGE_FILE_TOO_LARGE', `${MANIFEST_FILE} has ${size} bytes, more than the ${max} allowed`, { path: MANIFEST_FILE });
}

function directorySource(root: string, maxFileBytes: number): PackageSource {
  return {
    async readManifest(maxBytes) {
      const fh = await open(join(root, MANIFEST_FILE), constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw manifestMissing();
        if (err.code === 'ELOOP') {
          throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${MANIFEST_FILE} is a symlink`, { path: MANIFEST_FILE, cause: err });
        }
        throw err;
      });
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${MANIFEST_FILE} is not a regular file`, { path: MANIFEST_FILE });
        if (st.size > maxBytes) throw manifestTooLarge(st.size, maxBytes);
        const buf = Buffer.alloc(maxBytes + 1);
        let n = 0;
        for (;;) {
          const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
          if (bytesRead === 0) break;
          n += bytesRead;
          if (n > maxBytes) throw manifestTooLarge(n, maxBytes);
        }
        return buf.subarray(0, n);
      } finally {
        await fh.close();
      }
    },
    async listFiles() {
      const entries = await walkPackageDir(root);
      return new Map(entries.filter((e) => e.type === 'file').map((e) => [e.path, e.size]));
    },
    async hash(file) {
      const r = await hashFile(join(root, ...file.path.split('/')), { expectedSize: file.size, maxBytes: maxFileBytes, path: file.path });
      return r.sha256;
    },
    close: async () => {},
  };
}

function tarSource(tar: TarReader): PackageSource {
  return {
    async readManifest(maxBytes) {
      const entry = tar.get(MANIFEST_FILE);
      if (entry === undefined || entry.type !== 'file') throw manifestMissing();
      if (entry.size > maxBytes) throw manifestTooLarge(entry.size, maxBytes);
      return tar.read(entry);
    },
    async listFiles() {
      return new Map(tar.entries.filter((e) => e.type === 'file').map((e) => [e.path, e.size]));
    },
    async hash(file) {
      const entry = tar.get(file.path);
      if (entry === undefined) throw new PackageError('PACKAGE_FILE_MISSING', `${file.path} is not in the archive`, { path: file.path });
      const hash = createHash('sha256');
      for await (const chunk of tar.chunks(entry)) hash.update(chunk);
      return hash.digest('hex');
    },
    close: () => tar.close(),
  };
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`${name} must be a number of bytes >= 0, got ${String(value)}`);
  return value;
}

/**
 * Verify a model package, a directory or a `.tar` of one, against pinned Ed25519 keys and return
 * its validated manifest. The order of checks: manifest format version, then the signature
 * (nothing else in the manifest is trusted before it), then every manifest field and path (so
 * no escaping path touches the file system), the size limits, the files present against the
 * files listed, and last each file's size and streamed SHA-256. Each refusal is a PackageError
 * with its own code: 'PACKAGE_UNSIGNED', 'PACKAGE_SIGNATURE_INVALID', 'PACKAGE_KEY_UNTRUSTED',
 * 'PACKAGE_MANIFEST_VERSION', 'PACKAGE_MANIFEST_INVALID', 'PACKAGE_PATH_ESCAPE', 'PACKAGE_ROLE_UNEXPECTED',
 * 'PACKAGE_FILE_TOO_LARGE', 'PACKAGE_FILE_UNLISTED', 'PACKAGE_FILE_MISSING',
 * 'PACKAGE_FILE_UNSUPPORTED', 'PACKAGE_SIZE_MISMATCH', 'PACKAGE_HASH_MISMATCH', and for archives
 * the 'PACKAGE_TAR_*' codes of {@link TarReader.open}.
 * @example
 * const { manifest, keyId } = await verifyPackage('incoming/yolov5n-1.2.0.tar', { trustedKeys: [fleetKeyPem] });
 */
export async function verifyPackage(pathDirOrTar: string, options: VerifyOptions): Promise<VerifiedPackage> {
  if (typeof pathDirOrTar !== 'string' || pathDirOrTar === '') throw new TypeError('pathDirOrTar must be a directory or .tar path');
  if (typeof options !== 'object' || options === null || !Array.isArray(options.trustedKeys) || options.trustedKeys.length === 0) {
    throw new RangeError('options.trustedKeys must hold at least one Ed25519 public key');
  }
  const keys = options.trustedKeys.map((k, i) => {
    try {
      return toPublicKey(k);
    } catch (err) {
      throw new TypeError(`options.trustedKeys[${i}] is not an Ed25519 public key: ${(err as Error).message}`, { cause: err });
    }
  });
  const maxFileBytes = limit(options.maxFileBytes, DEFAULT_MAX_FILE_BYTES, 'options.maxFileBytes');
  const maxTotalBytes = limit(options.maxTotalBytes, DEFAULT_MAX_TOTAL_BYTES, 'options.maxTotalBytes');
  const maxManifestBytes = limit(options.maxManifestBytes, DEFAULT_MAX_MANIFEST_BYTES, 'options.maxManifestBytes');

  const roles = options.roles ?? ['model'];
  if (!Array.isArray(roles) || roles.length === 0 || roles.some((r) => !PACKAGE_ROLES.includes(r))) {
    throw new RangeError(`options.roles must list one or more of ${PACKAGE_ROLES.join(', ')}, got ${JSON.stringify(roles)}`);
  }
  const path = resolve(pathDirOrTar);
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    throw new PackageError('PACKAGE_NOT_FOUND', `no package at ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const source = isDir ? directorySource(path, maxFileBytes) : tarSource(await TarReader.open(path));
  try {
    const text = await source.readManifest(maxManifestBytes);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
    } catch (err) {
      throw new PackageError('PACKAGE_MANIFEST_INVALID', `${MANIFEST_FILE} is not UTF-8 JSON: ${(err as Error).message}`, { cause: err });
    }
    checkManifestVersion(json);
    const keyId = verifyManifestSignature(json, keys);
    const manifest = parseManifest(json);
    if (!roles.includes(manifestRole(manifest))) {
      throw new PackageError('PACKAGE_ROLE_UNEXPECTED', `${manifest.name} ${manifest.version} is a ${manifestRole(manifest)} package; expected ${roles.join(' or ')}`, {
        field: 'role',
      });
    }
    checkSizeLimits(manifest.files, maxFileBytes, maxTotalBytes);

    const present = await source.listFiles();
    const listed = new Map(manifest.files.map((f) => [f.path, f]));
    for (const p of present.keys()) {
      if (p !== MANIFEST_FILE && !listed.has(p)) {
        throw new PackageError('PACKAGE_FILE_UNLISTED', `${p} is in the package but not in the manifest`, { path: p });
      }
    }
    for (const f of manifest.files) {
      const size = present.get(f.path);
      if (size === undefined) throw new PackageError('PACKAGE_FILE_MISSING', `${f.path} is in the manifest but not in the package`, { path: f.path });
      if (size !== f.size) {
        throw new PackageError('PACKAGE_SIZE_MISMATCH', `${f.path} has ${size} bytes; the manifest says ${f.size}`, { path: f.path });
      }
    }
    for (const f of manifest.files) {
      const sha256 = await source.hash(f);
      if (sha256 !== f.sha256) {
        throw new PackageError('PACKAGE_HASH_MISMATCH', `${f.path} has SHA-256 ${sha256}; the manifest says ${f.sha256}`, { path: f.path });
      }
    }
    return { manifest, keyId, files: manifest.files.map((f) => ({ ...f })), kind: isDir ? 'directory' : 'tar', path };
  } finally {
    await source.close();
  }
}
