import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { keyIdOf, toPublicKey, type KeyInput } from '@kd-edge/core/package';
import { makeCommand, type CommandFields, type EventMessage } from '@kd-edge/core/protocol';
import { KdEdgeError, silentLogger, type Logger } from '@kd-edge/core/util';
import { FleetError } from '../db/fleet-error.js';
import type { DeviceRegistry } from '../devices/device-registry.js';
import { writeBodyToFile } from '../http/file-body.js';
import type { PackageRecord } from '../registry/package-record.js';
import type { PackageRegistry } from '../registry/package-registry.js';
import type { RolloutCommand } from '../rollout/rollout-engine.js';
import { AdaptError } from './adapt-error.js';
import type { AdaptJobStore } from './adapt-job-store.js';
import { PullError } from './pull-error.js';

/** Default lifetime of an upload URL: one hour. */
export const DEFAULT_UPLOAD_TTL_MS = 3600_000;
/** The path upload URLs live under (`<publicUrl>/api/uploads/<token>`). */
export const UPLOAD_PATH = '/api/uploads/';

/** Options of {@link AdaptPulls}. */
export interface AdaptPullsOptions {
  /** The fleet database, with migration `202-adapt-uploads`. */
  db: Database.Database;
  registry: PackageRegistry;
  devices: DeviceRegistry;
  adaptJobs: AdaptJobStore;
  /** Publish a command on the device's command topic (QoS 1). */
  send: (deviceId: string, command: RolloutCommand) => Promise<void>;
  /** Sign a command with the fleet's command key (unsigned without one, as every other command). */
  sign?: (command: RolloutCommand) => RolloutCommand;
  /** Base URL agents reach kd-fleet at (the artifacts' URL): upload URLs are made from it. */
  publicUrl: string;
  /** The fleet's signing key, which promote signs with; undefined: promote refused. */
  signKey?: KeyInput;
  /** The registry's trusted keys: a promoted package must verify against them. */
  trustedKeys: readonly KeyInput[];
  /** Lifetime of an upload URL (ms, default 1 h). */
  uploadTtlMs?: number;
  now?: () => number;
  /** 32 random bytes (tests fix them). */
  randomToken?: () => Buffer;
  logger?: Logger;
}

/** The answer to a pull: the command sent and the one-time URL the device uploads to. */
export interface PullStarted {
  deviceId: string;
  jobId: string;
  version: string;
  commandId: string;
  url: string;
  expiresAt: number;
}

/** What an upload needs to be taken: the body, its limit and where it is spooled. */
export interface UploadInput {
  req: IncomingMessage;
  /** Largest upload, bytes (the registry's package limit). */
  limit: number;
  tempDir: string;
}

interface UploadRow {
  token_sha256: string;
  device_id: string;
  job_id: string;
  version: string;
  command_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  device_state: string | null;
  error_code: string | null;
}

const SHA256_RE = /^[0-9a-f]{64}$/;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Pulling an adapted package from a device and promoting it (issue 16). `pull` checks that the job succeeded, makes a
 * one-time upload token (256 random bits; only its SHA-256 is stored, bound to the device, the job and the expected
 * version, expiring) and sends the signed `adapt-upload` command with the URL. `receive` takes the device's PUT:
 * the token is its only credential, checked in constant time and used once; the bytes are spooled under the size
 * limit, hashed against `x-kd-sha256`, and the package is verified against that device's pinned key alone before the
 * registry stores it, unpromoted. `promote` re-signs it with the fleet's key, after which it rolls out like any model.
 * What becomes of each pull (the device's answers to `adapt-upload`, a refusal of its upload, the stored and promoted
 * package) is recorded for the job's `pull` and announced with the job store's `job` event, so live clients follow it.
 * @example
 * const { url } = await pulls.pull('cam-01', 'adapt-7');   // the device PUTs to url
 * await pulls.promote('shapes', '1.0.0+adapt.cam-01.1');
 */
export class AdaptPulls {
  readonly #o: AdaptPullsOptions & { publicUrl: string; now: () => number; uploadTtlMs: number; logger: Logger };
  readonly #db: Database.Database;
  /** Tokens whose upload is under way (a second concurrent use is refused). */
  readonly #inFlight = new Set<string>();

  constructor(options: AdaptPullsOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.send !== 'function') throw new TypeError('options.send must be a function');
    if (typeof options.publicUrl !== 'string') throw new TypeError('options.publicUrl must be a URL');
    const ttl = options.uploadTtlMs ?? DEFAULT_UPLOAD_TTL_MS;
    if (!Number.isSafeInteger(ttl) || ttl < 1) throw new RangeError(`options.uploadTtlMs must be a positive integer of ms, got ${String(ttl)}`);
    this.#o = { ...options, publicUrl: options.publicUrl.replace(/\/$/, ''), now: options.now ?? Date.now, uploadTtlMs: ttl, logger: options.logger ?? silentLogger };
    this.#db = options.db;
    // The device's answers to adapt-upload, for the job's pull state; the registry lives as long as this object.
    options.devices.on('event', this.#onEvent);
  }

  /** Stop following the devices' answers (the registry outlives this object). */
  close(): void {
    this.#o.devices.off('event', this.#onEvent);
  }

  /** Announce a job's changed pull to live clients; never throws into the caller's work. */
  #changed(deviceId: string, jobId: string): void {
    try {
      this.#o.adaptJobs.refresh(deviceId, jobId);
    } catch (err) {
      this.#o.logger.error(`adapt: could not announce the pull of ${deviceId}/${jobId}: ${(err as Error).message}`);
    }
  }

  /**
   * A device's event about an `adapt-upload` command: `accepted` and `succeeded` recorded as its state, `failed` with
   * its code and message unless the fleet already recorded why it refused the upload (the more precise of the two).
   */
  readonly #onEvent = (e: EventMessage): void => {
    if (e.command !== 'adapt-upload') return;
    try {
      const row = this.#db.prepare('SELECT * FROM adapt_uploads WHERE command_id = ? AND device_id = ?').get(e.commandId, e.deviceId) as UploadRow | undefined;
      if (row === undefined) return;
      if (e.state === 'failed') {
        this.#db.prepare(`UPDATE adapt_uploads SET device_state = 'failed', error_code = COALESCE(error_code, ?), error_message = COALESCE(error_message, ?)
          WHERE token_sha256 = ?`).run(e.code ?? 'AGENT_UPLOAD_FAILED', e.message ?? 'the device could not upload the package', row.token_sha256);
      } else if (e.state === 'accepted' || e.state === 'succeeded') {
        // A repeated or late `accepted` never hides the final answer.
        if (row.device_state === 'succeeded' || row.device_state === 'failed') return;
        this.#db.prepare('UPDATE adapt_uploads SET device_state = ? WHERE token_sha256 = ?').run(e.state, row.token_sha256);
      } else {
        return;
      }
      this.#changed(row.device_id, row.job_id);
    } catch (err) {
      this.#o.logger.error(`adapt: could not record ${e.deviceId}'s answer to ${e.commandId}: ${(err as Error).message}`);
    }
  };

  /** The device's pinned key, refused when it has none or reported another one that no operator accepted. */
  #deviceKey(deviceId: string): string {
    const device = this.#o.devices.get(deviceId);
    if (device === undefined) throw new FleetError('FLEET_DEVICE_NOT_FOUND', `no device ${JSON.stringify(deviceId)} in fleet ${this.#o.devices.fleet}`);
    const key = device.deviceKey;
    if (key === null) throw new PullError('FLEET_DEVICE_KEY_UNTRUSTED', `${deviceId} has not reported a device key: nothing it signs can be verified (its agent is older than issue 16?)`);
    if (key.mismatch !== null) {
      throw new PullError(
        'FLEET_DEVICE_KEY_UNTRUSTED',
        `${deviceId} reported key ${key.mismatch.keyId}, not its pinned ${key.keyId}; no operator has accepted it, so nothing it signs is trusted ` +
          `(check it out of band, then kd-fleet devices accept-key ${deviceId} <keyId>)`,
      );
    }
    return key.publicKeyPem;
  }

  /**
   * Ask device `deviceId` to upload the package of its succeeded job `jobId`. FleetError FLEET_DEVICE_NOT_FOUND,
   * AdaptError FLEET_ADAPT_JOB_NOT_FOUND, PullError FLEET_ADAPT_JOB_STATE (naming the state), FLEET_DEVICE_KEY_UNTRUSTED,
   * FleetError FLEET_PACKAGE_EXISTS when that version is in the registry already, PullError FLEET_DEVICE_OFFLINE.
   */
  async pull(deviceId: string, jobId: string): Promise<PullStarted> {
    this.#deviceKey(deviceId);
    const job = this.#o.adaptJobs.get(deviceId, jobId);
    if (job === undefined) throw new AdaptError('FLEET_ADAPT_JOB_NOT_FOUND', `no adaptation job ${JSON.stringify(jobId)} on device ${JSON.stringify(deviceId)}`);
    if (job.state !== 'succeeded' || job.version === null) {
      throw new PullError('FLEET_ADAPT_JOB_STATE', `job ${jobId} on ${deviceId} is ${job.state}; only a succeeded job has an adapted package to pull`);
    }
    const name = job.base.name;
    const existing = this.#o.registry.get(name, job.version);
    if (existing !== undefined) throw new FleetError('FLEET_PACKAGE_EXISTS', `${name}@${job.version} is in the registry already${existing.origin ? ' (pulled before)' : ''}`);
    const device = this.#o.devices.get(deviceId)!;
    if (!device.online) {
      // The command would wait in the broker, and its one-time URL might expire before the device is back.
      throw new PullError('FLEET_DEVICE_OFFLINE', `${deviceId} is offline (last heard from ${new Date(device.lastSeen).toISOString()}); pull when it is back online`);
    }
    const token = (this.#o.randomToken ?? (() => randomBytes(32)))().toString('base64url');
    const url = `${this.#o.publicUrl}${UPLOAD_PATH}${token}`;
    const commandId = `adapt-upload-${randomBytes(6).toString('hex')}`;
    const command = makeCommand({ command: 'adapt-upload', id: commandId, deviceId, jobId, url } as CommandFields) as RolloutCommand;
    const now = this.#o.now();
    const expiresAt = now + this.#o.uploadTtlMs;
    this.#db.prepare('INSERT INTO adapt_uploads (token_sha256, device_id, job_id, version, command_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(tokenDigest(token).toString('hex'), deviceId, jobId, job.version, commandId, now, expiresAt);
    try {
      await this.#o.send(deviceId, this.#o.sign === undefined ? command : this.#o.sign(command));
    } catch (err) {
      this.#db.prepare('DELETE FROM adapt_uploads WHERE token_sha256 = ?').run(tokenDigest(token).toString('hex'));
      throw err;
    }
    this.#o.logger.info(`adapt: asked ${deviceId} to upload ${name}@${job.version} of job ${jobId} (command ${commandId})`);
    this.#changed(deviceId, jobId);
    return { deviceId, jobId, version: job.version, commandId, url, expiresAt };
  }

  /** The upload bound to `token`, checked in constant time; PullError FLEET_UPLOAD_NOT_FOUND / _USED / _EXPIRED. */
  #claim(token: string): UploadRow {
    const digest = tokenDigest(token);
    const row = TOKEN_RE.test(token)
      ? (this.#db.prepare('SELECT * FROM adapt_uploads WHERE token_sha256 = ?').get(digest.toString('hex')) as UploadRow | undefined)
      : undefined;
    // The lookup is by the token's hash (nothing about the token leaks through it); the bytes are compared once more in constant time.
    if (row === undefined || !timingSafeEqual(Buffer.from(row.token_sha256, 'hex'), digest)) {
      throw new PullError('FLEET_UPLOAD_NOT_FOUND', 'no upload waits at this URL (kd-fleet adapt pull makes one)');
    }
    if (row.used_at !== null || this.#inFlight.has(row.token_sha256)) {
      throw new PullError('FLEET_UPLOAD_USED', `this upload URL (job ${row.job_id} on ${row.device_id}) was used already; pull again for another`);
    }
    if (this.#o.now() >= row.expires_at) {
      throw new PullError('FLEET_UPLOAD_EXPIRED', `this upload URL (job ${row.job_id} on ${row.device_id}) expired at ${new Date(row.expires_at).toISOString()}; pull again`);
    }
    return row;
  }

  /**
   * Take a device's upload at `token`. The token is spent by any answer but a transport failure (a body cut short,
   * a server error), which the device may retry. Resolves to the stored package, adapted and unpromoted.
   */
  async receive(token: string, input: UploadInput): Promise<PackageRecord> {
    const row = this.#claim(token);
    this.#inFlight.add(row.token_sha256);
    let spent = true;
    /** Why the upload was refused, recorded for the job's pull. */
    let refusal: { code: string; message: string } | null = null;
    const dir = await mkdtemp(join(input.tempDir, 'kd-fleet-adapt-upload-'));
    try {
      const deviceKey = this.#deviceKey(row.device_id);
      const declared = input.req.headers['x-kd-sha256'];
      if (typeof declared !== 'string' || !SHA256_RE.test(declared)) {
        throw new PullError('FLEET_UPLOAD_SHA_MISMATCH', `x-kd-sha256: expected the package's SHA-256 (64 lower-case hex characters), got ${declared === undefined ? 'nothing' : JSON.stringify(String(declared).slice(0, 80))}`);
      }
      const tar = join(dir, 'package.tar');
      await writeBodyToFile(input.req, tar, input.limit, 'the adapted package upload');
      const sha256 = await sha256Of(tar);
      if (sha256 !== declared) {
        throw new PullError('FLEET_UPLOAD_SHA_MISMATCH', `the upload hashes to ${sha256}, not the x-kd-sha256 ${declared}: it changed on the way; nothing was stored`);
      }
      const record = await this.#o.registry.pushAdapted(tar, { deviceId: row.device_id, jobId: row.job_id, version: row.version, deviceKey });
      this.#o.logger.info(`adapt: received ${record.name}@${record.version} from ${row.device_id} (job ${row.job_id}, key ${record.keyId}); promote it to roll it out`);
      return record;
    } catch (err) {
      // Every refusal spends the token; a transport failure (a body cut short, an internal error) leaves it for a retry.
      const cutShort = err instanceof KdEdgeError && err.code === 'FLEET_BAD_REQUEST' && !input.req.complete;
      if (cutShort || !(err instanceof KdEdgeError)) spent = false;
      else refusal = { code: err.code, message: err.message };
      throw err;
    } finally {
      if (spent) {
        this.#db.prepare('UPDATE adapt_uploads SET used_at = ?, error_code = ?, error_message = ? WHERE token_sha256 = ?')
          .run(this.#o.now(), refusal?.code ?? null, refusal?.message ?? null, row.token_sha256);
      }
      this.#inFlight.delete(row.token_sha256);
      await rm(dir, { recursive: true, force: true });
      this.#changed(row.device_id, row.job_id);
    }
  }

  /**
   * Promote pulled package `name@version`: re-signed with the fleet's key (PullError FLEET_PROMOTE_NO_KEY without one,
   * or when its public key is not among the trusted ones), then a normal model of the registry that keeps its origin.
   */
  async promote(name: string, version: string): Promise<PackageRecord> {
    const record = this.#o.registry.get(name, version);
    if (record === undefined) throw new FleetError('FLEET_PACKAGE_NOT_FOUND', `no package ${name}@${version} in the registry`);
    if (record.origin === null) throw new PullError('FLEET_PROMOTE_STATE', `${name}@${version} was pushed, not pulled from a device: it is a fleet package already`);
    if (record.promotedAt !== null) throw new PullError('FLEET_PROMOTE_STATE', `${name}@${version} was promoted already, at ${new Date(record.promotedAt).toISOString()}`);
    const signKey = this.#o.signKey;
    if (signKey === undefined) {
      throw new PullError('FLEET_PROMOTE_NO_KEY', 'promoting re-signs the package with the fleet\'s signing key, and this server has none: start kd-fleet serve with --sign-key <file> (its public key among --trust)');
    }
    const keyId = keyIdOf(toPublicKey(signKey));
    if (!this.#o.trustedKeys.some((k) => keyIdOf(k) === keyId)) {
      throw new PullError('FLEET_PROMOTE_NO_KEY', `the --sign-key (key ${keyId}) is not among the --trust keys: a package it signs would not verify here, nor on agents that pin those keys`);
    }
    const promoted = await this.#o.registry.promote(name, version, { signKey, trustedKeys: this.#o.trustedKeys });
    this.#changed(record.origin.deviceId, record.origin.jobId);
    return promoted;
  }

  /** Refuse a rollout of a pulled package that was not promoted (PullError FLEET_PACKAGE_NOT_PROMOTED). */
  static checkRollable(record: PackageRecord): void {
    if (record.origin !== null && record.promotedAt === null) {
      throw new PullError(
        'FLEET_PACKAGE_NOT_PROMOTED',
        `${record.name}@${record.version} was pulled from ${record.origin.deviceId} and is signed by that device's key only; promote it first (kd-fleet models promote ${record.name} ${record.version})`,
      );
    }
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
