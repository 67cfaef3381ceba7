import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileDurable } from '../util/durable-write.js';
import { PackageError } from './errors.js';

/** A key given as a node:crypto KeyObject or as PEM text (string or bytes). */
export type KeyInput = KeyObject | string | Uint8Array;

/** An Ed25519 key pair in PEM (SPKI public, PKCS#8 private) with its key id. */
export interface KeyPair {
  publicKeyPem: string;
  privateKeyPem: string;
  /** {@link keyIdOf} the public key. */
  keyId: string;
}

/** Generate an Ed25519 key pair for signing model packages. */
export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

function checkEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new PackageError('PACKAGE_KEY_INVALID', `${what} is a ${key.asymmetricKeyType ?? key.type} key; only Ed25519 is allowed`);
  }
  return key;
}

function isPem(input: string | Uint8Array): boolean {
  const text = typeof input === 'string' ? input : Buffer.from(input.subarray(0, 64)).toString('latin1');
  return text.includes('-----BEGIN ');
}

/** An Ed25519 public KeyObject from a KeyObject or PEM; a private key yields its public half. */
export function toPublicKey(input: KeyInput): KeyObject {
  if (input instanceof KeyObject) {
    if (input.type === 'secret') throw new PackageError('PACKAGE_KEY_INVALID', 'a secret key is not an Ed25519 public key');
    return checkEd25519(input.type === 'private' ? createPublicKey(input) : input, 'the public key');
  }
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
    throw new TypeError('publicKey must be a KeyObject, a PEM string or PEM bytes');
  }
  try {
    return checkEd25519(createPublicKey({ key: Buffer.from(input), format: 'pem' }), 'the public key');
  } catch (err) {
    if (err instanceof PackageError) throw err;
    throw new PackageError('PACKAGE_KEY_INVALID', `not a PEM public key: ${(err as Error).message}`, { cause: err });
  }
}

/** An Ed25519 private KeyObject from a KeyObject or PEM (PKCS#8, encrypted when `passphrase` is given). */
export function toPrivateKey(input: KeyInput, passphrase?: string): KeyObject {
  if (input instanceof KeyObject) {
    if (input.type !== 'private') throw new PackageError('PACKAGE_KEY_INVALID', `a ${input.type} key cannot sign; a private key is needed`);
    return checkEd25519(input, 'the private key');
  }
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
    throw new TypeError('privateKey must be a KeyObject, a PEM string or PEM bytes');
  }
  try {
    return checkEd25519(createPrivateKey({ key: Buffer.from(input), format: 'pem', passphrase }), 'the private key');
  } catch (err) {
    if (err instanceof PackageError) throw err;
    throw new PackageError('PACKAGE_KEY_INVALID', `not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The key id of an Ed25519 public key: the first 16 hex characters of the SHA-256 of its raw
 * 32 bytes. A private key gives the id of its public half.
 */
export function keyIdOf(key: KeyInput): string {
  const pub = toPublicKey(key);
  const raw = Buffer.from(pub.export({ format: 'jwk' }).x ?? '', 'base64url');
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

async function readPemOrPath(pemOrPath: string | Uint8Array): Promise<string | Uint8Array> {
  if (typeof pemOrPath !== 'string' || isPem(pemOrPath)) return pemOrPath;
  return readFile(pemOrPath);
}

/** Load an Ed25519 private key from PEM text or from a file path. */
export async function loadPrivateKey(pemOrPath: KeyInput, options: { passphrase?: string } = {}): Promise<KeyObject> {
  if (pemOrPath instanceof KeyObject) return toPrivateKey(pemOrPath);
  return toPrivateKey(await readPemOrPath(pemOrPath), options.passphrase);
}

/** Load an Ed25519 public key from PEM text or from a file path. */
export async function loadPublicKey(pemOrPath: KeyInput): Promise<KeyObject> {
  if (pemOrPath instanceof KeyObject) return toPublicKey(pemOrPath);
  return toPublicKey(await readPemOrPath(pemOrPath));
}

/** Where {@link writeKeyPair} puts the two PEM files. */
export interface KeyPairPaths {
  privateKeyPath: string;
  publicKeyPath: string;
}

/**
 * Write a key pair as PEM files: the private key with mode 0600, then the public key with 0644, each
 * complete and durable (temporary file, fsync, link or rename, fsync of the folder) before the next.
 * Existing files are kept (EEXIST) unless `overwrite` is true. A crash between the two leaves the
 * private key without its public half, never a half-written file.
 */
export async function writeKeyPair(pair: KeyPair, paths: KeyPairPaths, options: { overwrite?: boolean } = {}): Promise<void> {
  const overwrite = options.overwrite ?? false;
  // Each written under a temporary name with its final mode, fsynced, then put in place: a private key never lies in a
  // readable file, and no half-written key sits under the real name after a kill or a power cut.
  await writeFileDurable(paths.privateKeyPath, pair.privateKeyPem, 0o600, { exclusive: !overwrite });
  await writeFileDurable(paths.publicKeyPath, pair.publicKeyPem, 0o644, { exclusive: !overwrite });
}
