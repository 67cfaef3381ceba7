import { sign, verify } from 'node:crypto';
import { canonicalJsonBytes } from '../package/canonical-json.js';
import { keyIdOf, toPrivateKey, toPublicKey, type KeyInput } from '../package/keys.js';
import { commandRoot, commandSchema, commandSignatureSchema, type CommandSignature } from './command.js';
import { schemaError } from './issues.js';
import { ProtocolError } from './protocol-error.js';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The bytes a command signature covers: the canonical JSON (RFC 8785 style, core's canonicalJson) of
 * the command as it travels (a JSON round trip, so `undefined` fields vanish as they do on the wire)
 * with its `signature` field removed, UTF-8 encoded.
 */
export function commandSigningPayload(command: object): Buffer {
  if (!isObject(command)) throw new TypeError('command must be a JSON object');
  const { signature: _omitted, ...rest } = command;
  return canonicalJsonBytes(JSON.parse(JSON.stringify(rest)) as unknown);
}

/**
 * Validate a command and return a copy signed with an Ed25519 private key (any previous signature is
 * replaced); the key id is derived from the key. Throws ProtocolError 'PROTOCOL_SCHEMA' for an invalid command.
 * @example
 * const signed = signCommand(makeCommand({ command: 'rollback', deviceId: 'jetson-01' }), await loadPrivateKey('keys/fleet.key'));
 */
export function signCommand<C extends object>(command: C, privateKey: KeyInput): C & { signature: CommandSignature } {
  const key = toPrivateKey(privateKey);
  if (!isObject(command)) throw new TypeError('command must be a JSON object');
  const { signature: _old, ...rest } = command as C & { signature?: unknown };
  const checked = commandSchema.safeParse(rest, { reportInput: true });
  if (!checked.success) throw schemaError(commandRoot(rest), checked.error);
  const sig = sign(null, commandSigningPayload(rest), key).toString('base64');
  return { ...rest, signature: { keyId: keyIdOf(key), sig } } as C & { signature: CommandSignature };
}

/**
 * Check a command's signature against pinned public keys and return the id of the key that signed it.
 * Throws ProtocolError 'PROTOCOL_SIGNATURE' with `field` `signature` when it is missing or malformed,
 * `signature.keyId` when the key is not trusted, and `signature.sig` when it does not verify. Works on
 * the raw JSON object or on parseMessage's result (parsing adds no field).
 */
export function verifyCommandSignature(command: unknown, trustedKeys: readonly KeyInput[]): string {
  if (!Array.isArray(trustedKeys) || trustedKeys.length === 0) throw new RangeError('trustedKeys must hold at least one Ed25519 public key');
  if (!isObject(command)) throw new ProtocolError('PROTOCOL_SIGNATURE', 'the command is not a JSON object', { field: '(root)' });
  const root = commandRoot(command);
  if (command.signature === undefined) throw new ProtocolError('PROTOCOL_SIGNATURE', `${root}.signature: the command is not signed`, { field: 'signature' });
  const parsed = commandSignatureSchema.safeParse(command.signature, { reportInput: true });
  if (!parsed.success) {
    const inner = schemaError(`${root}.signature`, parsed.error);
    throw new ProtocolError('PROTOCOL_SIGNATURE', inner.message, { field: 'signature', issues: inner.issues, cause: parsed.error });
  }
  const { keyId, sig } = parsed.data;
  const keys = trustedKeys.map((k, i) => {
    try {
      return toPublicKey(k);
    } catch (err) {
      throw new TypeError(`trustedKeys[${i}] is not an Ed25519 public key: ${(err as Error).message}`, { cause: err });
    }
  });
  const key = keys.find((k) => keyIdOf(k) === keyId);
  if (key === undefined) {
    throw new ProtocolError('PROTOCOL_SIGNATURE', `${root}.signature.keyId: key ${keyId} is not among the ${keys.length} trusted key(s)`, {
      field: 'signature.keyId',
      value: keyId,
    });
  }
  let payload: Buffer;
  try {
    payload = commandSigningPayload(command);
  } catch (err) {
    throw new ProtocolError('PROTOCOL_SIGNATURE', `${root}: the command has no canonical JSON form: ${(err as Error).message}`, { cause: err });
  }
  if (!verify(null, payload, key, Buffer.from(sig, 'base64'))) {
    throw new ProtocolError('PROTOCOL_SIGNATURE', `${root}.signature.sig: the signature by key ${keyId} does not match the command`, {
      field: 'signature.sig',
      value: keyId,
    });
  }
  return keyId;
}
