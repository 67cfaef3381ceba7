import { createPublicKey, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, keyIdOf, silentLogger, toPrivateKey, TMP_TAG, writeFileDurable, writeKeyPair, type Logger } from '@kd-edge/core';
import { AgentError } from '../errors.js';

/** The folder under the agent's `dataDir` that holds the device key pair. */
export const DEVICE_KEY_DIR = 'keys';
/** The device's Ed25519 private key (PKCS#8 PEM, mode 0600): the one source of truth. */
export const DEVICE_PRIVATE_KEY_FILE = 'device.key';
/** Its public half (SPKI PEM, 0644), for people and tools; rewritten from the private key whenever it disagrees. */
export const DEVICE_PUBLIC_KEY_FILE = 'device.pub';

/** The device's own key pair: it signs the device's own adapted packages and is never trusted for anything from the network. */
export interface DeviceKey {
  /** keyIdOf the public key (16 hex characters), as the status reports it. */
  keyId: string;
  /** The public key in SPKI PEM, as the status reports it. */
  publicKeyPem: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
  privateKeyPath: string;
  publicKeyPath: string;
  /** True when this call made the key (the device's first start, or after its private key was moved away). */
  created: boolean;
}

/** Options of {@link loadOrCreateDeviceKey}. */
export interface DeviceKeyOptions {
  logger?: Logger;
}

/**
 * Load the device key pair from `<dataDir>/keys/`, or make one when there is no private key yet. The private key
 * is the truth: the public half is derived from it at every load (and `device.pub` rewritten when it is missing
 * or differs), so a crash between writing the two files can never leave the device reporting a key it cannot
 * sign with. A private key file that exists but does not load is an error naming the file (AgentError
 * 'AGENT_DEVICE_KEY_INVALID'), never replaced: the fleet has pinned the public key, and a silent new one would
 * look like another device. Temporary files a crash left in the folder are removed first.
 * @example
 * const key = await loadOrCreateDeviceKey(config.dataDir, { logger });
 * status.deviceKey = { keyId: key.keyId, publicKeyPem: key.publicKeyPem };
 */
export async function loadOrCreateDeviceKey(dataDir: string, options: DeviceKeyOptions = {}): Promise<DeviceKey> {
  if (typeof dataDir !== 'string' || dataDir === '') throw new TypeError('dataDir must be a folder path');
  const log = options.logger ?? silentLogger;
  const dir = join(dataDir, DEVICE_KEY_DIR);
  const privateKeyPath = join(dir, DEVICE_PRIVATE_KEY_FILE);
  const publicKeyPath = join(dir, DEVICE_PUBLIC_KEY_FILE);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await removeLeftovers(dir);

  let created = false;
  let pem = await readPrivate(privateKeyPath);
  if (pem === undefined) {
    // Without a private key a device.pub is stale (or a crash's half): it names nothing this device can sign with.
    await rm(publicKeyPath, { force: true });
    try {
      await writeKeyPair(generateKeyPair(), { privateKeyPath, publicKeyPath });
      created = true;
    } catch (err) {
      // Another process made it first (link() refused): take theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new AgentError('AGENT_DEVICE_KEY_INVALID', `${privateKeyPath}: cannot write the device key: ${(err as Error).message}`, { cause: err });
    }
    pem = await readPrivate(privateKeyPath);
    if (pem === undefined) throw new AgentError('AGENT_DEVICE_KEY_INVALID', `${privateKeyPath}: the device key vanished while it was made`);
  }

  let privateKey: KeyObject;
  try {
    privateKey = toPrivateKey(pem);
  } catch (err) {
    throw new AgentError(
      'AGENT_DEVICE_KEY_INVALID',
      `${privateKeyPath} is not a usable Ed25519 private key (${(err as Error).message}). kd-agent does not replace it, because the fleet ` +
        'has pinned this device\'s public key: restore the file from a backup, or move it away so that a new key is made at the next ' +
        'start and have an operator accept the new key in the fleet (kd-fleet devices accept-key)',
      { cause: err },
    );
  }
  if (((await stat(privateKeyPath)).mode & 0o077) !== 0) {
    log.warn(`device key: ${privateKeyPath} was readable by others; its mode is now 0600`);
    await chmod(privateKeyPath, 0o600);
  }
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const keyId = keyIdOf(publicKey);
  const onDisk = await readFile(publicKeyPath, 'utf8').catch(() => undefined);
  if (onDisk !== publicKeyPem) {
    if (!created) log.warn(`device key: ${publicKeyPath} ${onDisk === undefined ? 'was missing' : 'did not match device.key'}; written again from the private key`);
    await writeFileDurable(publicKeyPath, publicKeyPem, 0o644);
  }
  if (created) log.info(`device key: made ${keyId} in ${dir}`);
  return { keyId, publicKeyPem, publicKey, privateKey, privateKeyPath, publicKeyPath, created };
}

/** The private key file's bytes, or undefined when there is none; any other failure names the file. */
async function readPrivate(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('AGENT_DEVICE_KEY_INVALID', `${path}: cannot read the device key: ${(err as Error).message}`, { cause: err });
  }
}

/** Temporary siblings of the two key files (`.device.key.tmp-…`) that a crash left; nothing else in the folder is touched. */
async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const ours = name.startsWith(`.${DEVICE_PRIVATE_KEY_FILE}.`) || name.startsWith(`.${DEVICE_PUBLIC_KEY_FILE}.`);
    if (ours && name.includes(TMP_TAG)) await rm(join(dir, name), { force: true, recursive: true });
  }
}
