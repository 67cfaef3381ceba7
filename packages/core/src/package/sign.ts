import { sign, verify } from 'node:crypto';
import { canonicalJsonBytes } from './canonical-json.js';
import { PackageError } from './errors.js';
import { keyIdOf, toPrivateKey, toPublicKey, type KeyInput } from './keys.js';
import { parseManifest, parseSignature, type Manifest, type UnsignedManifest } from './manifest.js';

/**
 * The bytes a package signature covers: the canonical JSON (RFC 8785 style) of the manifest
 * with its `signature` field removed, UTF-8 encoded.
 */
export function signingPayload(manifest: object): Buffer {
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
    throw new TypeError('manifest must be a JSON object');
  }
  const { signature: _omitted, ...rest } = manifest as Record<string, unknown>;
  return canonicalJsonBytes(rest);
}

/**
 * Validate `manifest` and return a copy signed with an Ed25519 private key (any previous
 * signature is replaced). The key id is derived from the key.
 * @example
 * const signed = signManifest(manifest, await loadPrivateKey('keys/fleet.key'));
 */
export function signManifest(manifest: UnsignedManifest | Manifest, privateKey: KeyInput): Manifest {
  const key = toPrivateKey(privateKey);
  // A stale signature is dropped before validation: it is about to be replaced, whatever its shape.
  const { signature: _old, ...rest } = manifest as Manifest;
  const unsigned = parseManifest(rest);
  const value = sign(null, signingPayload(unsigned), key).toString('base64');
  return { ...unsigned, signature: { algorithm: 'ed25519', keyId: keyIdOf(key), value } };
}

/**
 * Check the signature of a parsed (not yet validated) manifest against pinned public keys and
 * return the id of the key that signed it. Throws PackageError 'PACKAGE_UNSIGNED' when there is
 * no signature, 'PACKAGE_KEY_UNTRUSTED' when its key id is not among `trustedKeys`, and
 * 'PACKAGE_SIGNATURE_INVALID' when it is malformed or does not verify.
 */
export function verifyManifestSignature(json: unknown, trustedKeys: readonly KeyInput[]): string {
  if (!Array.isArray(trustedKeys) || trustedKeys.length === 0) {
    throw new RangeError('trustedKeys must hold at least one Ed25519 public key');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new PackageError('PACKAGE_MANIFEST_INVALID', 'the manifest is not a JSON object', { field: '(root)' });
  }
  const raw = (json as Record<string, unknown>).signature;
  if (raw === undefined) throw new PackageError('PACKAGE_UNSIGNED', 'the manifest has no signature', { field: 'signature' });
  let signature;
  try {
    signature = parseSignature(raw);
  } catch (err) {
    throw new PackageError('PACKAGE_SIGNATURE_INVALID', `malformed signature: ${(err as Error).message}`, { field: 'signature', cause: err });
  }
  const keys = trustedKeys.map((k, i) => {
    try {
      return toPublicKey(k);
    } catch (err) {
      throw new TypeError(`trustedKeys[${i}] is not an Ed25519 public key: ${(err as Error).message}`, { cause: err });
    }
  });
  const key = keys.find((k) => keyIdOf(k) === signature.keyId);
  if (key === undefined) {
    throw new PackageError('PACKAGE_KEY_UNTRUSTED', `the manifest is signed by key ${signature.keyId}, which is not among the ${keys.length} trusted key(s)`, {
      field: 'signature.keyId',
    });
  }
  let payload: Buffer;
  try {
    payload = signingPayload(json);
  } catch (err) {
    throw new PackageError('PACKAGE_MANIFEST_INVALID', `the manifest has no canonical JSON form: ${(err as Error).message}`, { cause: err });
  }
  if (!verify(null, payload, key, Buffer.from(signature.value, 'base64'))) {
    throw new PackageError('PACKAGE_SIGNATURE_INVALID', `the signature by key ${signature.keyId} does not match the manifest`, {
      field: 'signature.value',
    });
  }
  return signature.keyId;
}
