import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type Database from 'better-sqlite3';
import {
  compareSemver, extractTar, MANIFEST_FILE, manifestRole, packDirectory, PACKAGE_ROLES, parseManifest, signManifest, TarReader, verifyPackage, writeManifest,
  type KeyInput, type Manifest, type PackageRole,
} from '@kd-edge/core/package';
import { fleetTopics, isModelName, isModelVersion, parseAdaptedVersion } from '@kd-edge/core/protocol';
import { KdEdgeError, silentLogger, type Logger, fsyncDir } from '@kd-edge/core/util';
import { FleetError } from '../db/fleet-error.js';
import type { PackageOrigin, PackageRecord } from './package-record.js';

/** Publishes one MQTT message (an mqtt.js `publishAsync` fits); used for the retained manifests. */
export type PublishFunction = (topic: string, payload: string | Buffer, options: { qos: 0 | 1 | 2; retain: boolean }) => unknown;

/** Options of {@link PackageRegistry}. */
export interface PackageRegistryOptions {
  /** kd-fleet's data directory; tars are kept under `<dataDir>/packages/<name>/<version>.tar`. */
  dataDir: string;
  /** The fleet id, for the manifest topics; needed only with `publish`. */
  fleet?: string;
  /** Publishes the retained signed manifest of each pushed package on `models/{name}/{version}/manifest`. */
  publish?: PublishFunction;
  /** The clock (ms), for `pushedAt`. */
  now?: () => number;
  logger?: Logger;
}

/** Options of {@link PackageRegistry.push}. */
export interface PushOptions {
  /** The pinned Ed25519 public keys a package must be signed by (several allow rotation). */
  trustedKeys: readonly KeyInput[];
  /**
   * The package roles accepted (default both, `['model', 'teacher']`): the registry holds serving models and the
   * teachers devices adapt with; what may be done with each (a rollout, a teacher push) is checked where it is done.
   */
  roles?: readonly PackageRole[];
}

/** Options of {@link PackageRegistry.pushAdapted}. */
export interface PushAdaptedOptions {
  /** The device the package comes from: its version must be an adaptation made on it. */
  deviceId: string;
  /** The adaptation job that made it. */
  jobId: string;
  /** The version expected (the job's), checked against the signed manifest. */
  version: string;
  /** The device's pinned public key: the only key the package may be signed by. */
  deviceKey: KeyInput;
}

/** Options of {@link PackageRegistry.promote}. */
export interface PromoteOptions {
  /** The fleet's private key the manifest is signed with again. */
  signKey: KeyInput;
  /** The registry's trusted keys, which the re-signed package must verify against. */
  trustedKeys: readonly KeyInput[];
}

interface PackageRow {
  name: string;
  version: string;
  sha256: string;
  size: number;
  manifest_json: string;
  path: string;
  pushed_at: number;
  key_id: string;
  // Columns of migration 202-adapt-uploads; absent (undefined) in a database with the core migrations only.
  origin_device?: string | null;
  origin_job?: string | null;
  promoted_at?: number | null;
}

/**
 * The model registry: signed package `.tar`s verified on push and kept under the data directory, with
 * their identity, hash and manifest in SQLite (table `packages` of {@link coreMigrations}). A version
 * once pushed never changes: pushing it again with the same bytes is a no-op, with other bytes it is
 * refused.
 * @example
 * const registry = new PackageRegistry(db, { dataDir, fleet: 'lab', publish: (t, p, o) => client.publishAsync(t, p, o) });
 * const pkg = await registry.push('yolov5n-pets-1.2.0.tar', { trustedKeys: [publicKeyPem] });
 */
export class PackageRegistry {
  readonly dataDir: string;
  readonly packagesDir: string;
  readonly #db: Database.Database;
  readonly #o: { fleet?: string; publish?: PublishFunction; now: () => number; logger: Logger };
  readonly #byNameVersion: Database.Statement<[string, string], PackageRow>;
  readonly #bySha: Database.Statement<[string], PackageRow>;
  readonly #all: Database.Statement<[], PackageRow>;
  readonly #insert: Database.Statement<[string, string, string, number, string, string, number, string]>;

  constructor(db: Database.Database, options: PackageRegistryOptions) {
    if (typeof db !== 'object' || db === null || typeof db.prepare !== 'function') throw new TypeError('db must be a better-sqlite3 Database');
    if (typeof options !== 'object' || options === null || typeof options.dataDir !== 'string' || options.dataDir === '') {
      throw new TypeError('options.dataDir must be a directory path');
    }
    if (options.publish !== undefined && typeof options.publish !== 'function') throw new TypeError('options.publish must be a function');
    if (options.publish !== undefined && typeof options.fleet !== 'string') throw new TypeError('options.fleet is needed with options.publish');
    if (options.fleet !== undefined) fleetTopics(options.fleet); // RangeError for a bad fleet id, now rather than at the first push
    this.#db = db;
    this.dataDir = resolve(options.dataDir);
    this.packagesDir = join(this.dataDir, 'packages');
    this.#o = { fleet: options.fleet, publish: options.publish, now: options.now ?? Date.now, logger: options.logger ?? silentLogger };
    this.#byNameVersion = db.prepare('SELECT * FROM packages WHERE name = ? AND version = ?');
    this.#bySha = db.prepare('SELECT * FROM packages WHERE sha256 = ? ORDER BY pushed_at LIMIT 1');
    this.#all = db.prepare('SELECT * FROM packages');
    this.#insert = db.prepare(
      'INSERT INTO packages (name, version, sha256, size, manifest_json, path, pushed_at, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
  }

  /**
   * Verify a package `.tar` against the trusted keys and store it. The bytes are first copied into the
   * data directory and hashed, and that copy is what is verified and kept, so the stored file is
   * exactly the verified one. A refusal by core's verifyPackage is a FleetError 'FLEET_PACKAGE_REFUSED'
   * whose message starts with the core code (e.g. `PACKAGE_UNSIGNED`); the same name and version with
   * other bytes is 'FLEET_PACKAGE_EXISTS'. Resolves to the stored record (the existing one for a repeat push).
   */
  async push(tarPath: string, options: PushOptions): Promise<PackageRecord> {
    if (typeof tarPath !== 'string' || tarPath === '') throw new TypeError('tarPath must be the path of a package .tar');
    if (typeof options !== 'object' || options === null || !Array.isArray(options.trustedKeys) || options.trustedKeys.length === 0) {
      throw new RangeError('options.trustedKeys must hold at least one Ed25519 public key');
    }
    return this.#ingest(tarPath, (temp) => this.#verify(temp, options.trustedKeys, options.roles ?? PACKAGE_ROLES), undefined);
  }

  /**
   * Verify and store an adapted package a device uploaded (issue 16): signed by `deviceKey` and no other key (the
   * fleet's included: PACKAGE_KEY_UNTRUSTED), role `model`, version `version`, an adaptation made on `deviceId`.
   * It is stored with its origin and unpromoted: listed, downloadable, not rolled out until {@link promote}. A refusal is
   * FleetError 'FLEET_PACKAGE_REFUSED' (the core code first in the message) and stores nothing. Needs migration 202.
   */
  async pushAdapted(tarPath: string, options: PushAdaptedOptions): Promise<PackageRecord> {
    if (typeof tarPath !== 'string' || tarPath === '') throw new TypeError('tarPath must be the path of a package .tar');
    const { deviceId, jobId, version, deviceKey } = options;
    return this.#ingest(tarPath, async (temp) => {
      const verified = await this.#verify(temp, [deviceKey], ['model']);
      const m = verified.manifest;
      if (m.version !== version) {
        throw new FleetError('FLEET_PACKAGE_REFUSED', `PACKAGE_VERSION_MISMATCH: the package is ${m.name}@${m.version}; this upload was for version ${version} of job ${jobId}`);
      }
      if (parseAdaptedVersion(m.version)?.deviceId !== deviceId) {
        throw new FleetError('FLEET_PACKAGE_REFUSED', `PACKAGE_VERSION_MISMATCH: ${m.version} is not an adaptation made on ${deviceId} (expected <base>+adapt.${deviceId}.<n>)`);
      }
      return verified;
    }, { deviceId, jobId });
  }

  async #ingest(
    tarPath: string, check: (temp: string) => Promise<{ manifest: Manifest; keyId: string; manifestJson: string }>, origin: PackageOrigin | undefined,
  ): Promise<PackageRecord> {
    const source = resolve(tarPath);
    const st = await stat(source).catch((err: NodeJS.ErrnoException) => {
      throw new FleetError('FLEET_PACKAGE_REFUSED', `PACKAGE_NOT_FOUND: no package at ${source} (${err.code ?? err.message})`, { cause: err });
    });
    if (!st.isFile()) throw new FleetError('FLEET_PACKAGE_REFUSED', `${source} is not a file: push takes a package .tar (kd-trainer package writes one)`);

    mkdirSync(this.packagesDir, { recursive: true });
    const temp = join(this.packagesDir, `.incoming-${randomBytes(6).toString('hex')}.tar`);
    try {
      const { sha256, size } = await copyHashed(source, temp);
      const { manifest, keyId, manifestJson } = await check(temp);
      const rel = `${manifest.name}/${manifest.version}.tar`;
      const dest = join(this.packagesDir, manifest.name, `${manifest.version}.tar`);
      // One IMMEDIATE transaction holds the write lock from the check to the rename, so a second pusher
      // (another process on the same data directory) sees either nothing or the finished row, never half.
      const store = this.#db.transaction((): PackageRow | undefined => {
        const existing = this.#byNameVersion.get(manifest.name, manifest.version);
        if (existing !== undefined) return existing;
        if (origin === undefined) this.#insert.run(manifest.name, manifest.version, sha256, size, manifestJson, rel, this.#o.now(), keyId);
        else this.#insertAdapted().run(manifest.name, manifest.version, sha256, size, manifestJson, rel, this.#o.now(), keyId, origin.deviceId, origin.jobId);
        mkdirSync(dirname(dest), { recursive: true });
        renameSync(temp, dest); // a throw here rolls the row back
        return undefined;
      });
      const existing = store.immediate();
      if (existing !== undefined && existing.sha256 !== sha256) {
        throw new FleetError(
          'FLEET_PACKAGE_EXISTS',
          `${manifest.name}@${manifest.version} is already in the registry with SHA-256 ${existing.sha256}; this .tar is ${sha256}. Push a new version instead`,
        );
      }
      if (existing === undefined) {
        await fsyncDir(dirname(dest));
        this.#o.logger.info(`registry: pushed ${manifestRole(manifest)} ${manifest.name}@${manifest.version} (${size} bytes, sha256 ${sha256.slice(0, 12)}, key ${keyId})`);
      }
      const record = this.#record(existing ?? this.#byNameVersion.get(manifest.name, manifest.version)!);
      await this.#publish(record);
      return record;
    } finally {
      await rm(temp, { force: true });
    }
  }

  // Prepared on first use: the statement names columns of migration 202, which a core-only database lacks.
  #insertAdapted(): Database.Statement<[string, string, string, number, string, string, number, string, string, string]> {
    return this.#db.prepare(
      'INSERT INTO packages (name, version, sha256, size, manifest_json, path, pushed_at, key_id, origin_device, origin_job) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
  }

  /**
   * Promote an adapted package: its manifest signed again with `signKey` (every field kept, the files, their hashes
   * and the adapted version included), packed again, verified against `trustedKeys`, and the entry replaced at once
   * (row and `.tar` in one transaction) by a fleet-signed package that keeps its origin and gets `promotedAt`. The
   * caller checks that it is an unpromoted adapted package. FleetError 'FLEET_PACKAGE_NOT_FOUND', 'FLEET_PACKAGE_REFUSED'
   * (the re-signed package does not verify: nothing changes), 'FLEET_PACKAGE_EXISTS' (it changed meanwhile).
   */
  async promote(name: string, version: string, options: PromoteOptions): Promise<PackageRecord> {
    const record = this.get(name, version);
    if (record === undefined) throw new FleetError('FLEET_PACKAGE_NOT_FOUND', `no package ${name}@${version} in the registry`);
    mkdirSync(this.packagesDir, { recursive: true });
    const work = await mkdtemp(join(this.packagesDir, '.promote-'));
    try {
      const dir = join(work, 'package');
      await extractTar(record.path, dir);
      const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
      await writeManifest(dir, signManifest(manifest, options.signKey));
      const tar = join(work, 'package.tar');
      await packDirectory(dir, tar);
      const { manifest: signed, keyId, manifestJson } = await this.#verify(tar, options.trustedKeys, ['model']);
      const { sha256, size } = await hashOf(tar);
      const now = this.#o.now();
      const update = this.#db.prepare(
        'UPDATE packages SET sha256 = ?, size = ?, manifest_json = ?, key_id = ?, promoted_at = ? WHERE name = ? AND version = ? AND sha256 = ?',
      );
      const replace = this.#db.transaction((): boolean => {
        if (update.run(sha256, size, manifestJson, keyId, now, signed.name, signed.version, record.sha256).changes !== 1) return false;
        renameSync(tar, record.path); // a throw here rolls the row back
        return true;
      });
      if (!replace.immediate()) throw new FleetError('FLEET_PACKAGE_EXISTS', `${name}@${version} changed while it was being promoted; try again`);
      await fsyncDir(dirname(record.path));
      this.#o.logger.info(`registry: promoted ${name}@${version} (sha256 ${sha256.slice(0, 12)}, key ${keyId}; was ${record.keyId})`);
      const promoted = this.get(name, version)!;
      await this.#publish(promoted);
      return promoted;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Every package, by name, then newest version first. */
  list(): PackageRecord[] {
    return this.#all
      .all()
      .map((r) => this.#record(r))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : compareSemver(b.version, a.version)));
  }

  /** The package `name@version`, or undefined. */
  get(name: string, version: string): PackageRecord | undefined {
    if (typeof name !== 'string' || typeof version !== 'string') throw new TypeError('name and version must be strings');
    const row = this.#byNameVersion.get(name, version);
    return row === undefined ? undefined : this.#record(row);
  }

  /** The package whose `.tar` has this SHA-256, or undefined (the chunk service finds packages this way). */
  getBySha256(sha256: string): PackageRecord | undefined {
    if (typeof sha256 !== 'string') throw new TypeError('sha256 must be a string');
    const row = this.#bySha.get(sha256);
    return row === undefined ? undefined : this.#record(row);
  }

  /**
   * Publish the retained manifest of `name@version` (all packages when omitted), for a broker that lost
   * its retained messages (an embedded aedes after a restart). Does nothing without a publish function.
   */
  async publishManifests(name?: string, version?: string): Promise<number> {
    const records = name === undefined ? this.list() : [this.get(name, version ?? '')].filter((r): r is PackageRecord => r !== undefined);
    if (name !== undefined && records.length === 0) throw new FleetError('FLEET_PACKAGE_NOT_FOUND', `no package ${name}@${version ?? ''} in the registry`);
    let n = 0;
    for (const r of records) if (await this.#publish(r)) n++;
    return n;
  }

  async #verify(tar: string, trustedKeys: readonly KeyInput[], roles: readonly PackageRole[]): Promise<{ manifest: Manifest; keyId: string; manifestJson: string }> {
    let verified;
    try {
      verified = await verifyPackage(tar, { trustedKeys, roles });
    } catch (err) {
      if (err instanceof KdEdgeError) throw new FleetError('FLEET_PACKAGE_REFUSED', `${err.code}: ${err.message}`, { cause: err });
      throw err;
    }
    // Keep the manifest's own bytes: they are what the signature covers and what agents are sent.
    const reader = await TarReader.open(tar);
    let manifestJson: string;
    try {
      manifestJson = (await reader.read(reader.get(MANIFEST_FILE)!)).toString('utf8');
    } finally {
      await reader.close();
    }
    if (!isModelName(verified.manifest.name) || !isModelVersion(verified.manifest.version)) {
      throw new FleetError('FLEET_PACKAGE_REFUSED', `PACKAGE_MANIFEST_INVALID: ${verified.manifest.name}@${verified.manifest.version} is not a valid model name and version`);
    }
    return { manifest: verified.manifest, keyId: verified.keyId, manifestJson };
  }

  async #publish(record: PackageRecord): Promise<boolean> {
    const publish = this.#o.publish;
    if (publish === undefined) return false;
    const topic = fleetTopics(this.#o.fleet!).manifest(record.name, record.version);
    try {
      await publish(topic, record.manifestJson, { qos: 1, retain: true });
      return true;
    } catch (err) {
      // The package is stored; a lost manifest is published again by publishManifests() at the next start.
      this.#o.logger.warn(`registry: could not publish the manifest of ${record.name}@${record.version}: ${(err as Error).message}`);
      return false;
    }
  }

  #record(row: PackageRow): PackageRecord {
    const path = isAbsolute(row.path) ? row.path : join(this.packagesDir, ...row.path.split('/'));
    if (!isAbsolute(row.path) && relative(this.packagesDir, path).startsWith('..')) throw new RangeError(`package path ${row.path} leaves the packages directory`);
    const manifest = parseManifest(JSON.parse(row.manifest_json));
    return {
      name: row.name,
      version: row.version,
      sha256: row.sha256,
      size: row.size,
      // The role lives in the signed manifest stored with the row: one source of truth, nothing to migrate.
      role: manifestRole(manifest),
      manifest,
      manifestJson: row.manifest_json,
      path,
      pushedAt: row.pushed_at,
      keyId: row.key_id,
      origin: typeof row.origin_device === 'string' ? { deviceId: row.origin_device, jobId: row.origin_job ?? '' } : null,
      promotedAt: row.promoted_at ?? null,
    };
  }
}

/** Copy `from` to `to` (created exclusively), hashing the bytes on the way and syncing them to disk. */
async function copyHashed(from: string, to: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    createReadStream(from),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(to, { flags: 'wx' }),
  );
  const fh = await open(to, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { sha256: hash.digest('hex'), size };
}

/** SHA-256 and size of a file. */
async function hashOf(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
