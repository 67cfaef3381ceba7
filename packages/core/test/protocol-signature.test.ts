import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../src/package/keys.js';
import { makeCommand } from '../src/protocol/command.js';
import { commandSigningPayload, signCommand, verifyCommandSignature } from '../src/protocol/command-signature.js';
import { parseMessage } from '../src/protocol/parse.js';
import { ProtocolError } from '../src/protocol/protocol-error.js';
import { DOCS_KEY, protocolExamples, seededKey } from './protocol-fixtures.js';

const fleetKey = seededKey('fleet key for signature tests');
const otherKey = seededKey('another fleet key');

function signatureError(command: unknown, keys = [fleetKey.publicKey]): ProtocolError {
  try {
    verifyCommandSignature(command, keys);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('PROTOCOL_SIGNATURE');
    return err as ProtocolError;
  }
  throw new Error('expected a PROTOCOL_SIGNATURE error');
}

describe('command signatures', () => {
  const rollback = makeCommand({ command: 'rollback', id: 'c-9', deviceId: 'd1', fromVersion: '1.2.0', ts: '2026-05-01T12:00:00Z' });
  const signed = signCommand(rollback, fleetKey.privateKey);

  it('verify with the signing key and return its id', () => {
    const keyId = verifyCommandSignature(signed, [otherKey.publicKey, fleetKey.publicKey]);
    expect(keyId).toBe(signed.signature.keyId);
    expect(keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('still verify after a trip through JSON and parseMessage (parsing adds nothing)', () => {
    const wire = Buffer.from(JSON.stringify(signed));
    expect(verifyCommandSignature(JSON.parse(wire.toString()), [fleetKey.publicKey])).toBe(signed.signature.keyId);
    expect(verifyCommandSignature(parseMessage('cmd', wire), [fleetKey.publicKey])).toBe(signed.signature.keyId);
    const { deploy } = protocolExamples();
    expect(verifyCommandSignature(parseMessage('cmd', JSON.stringify(deploy)), [DOCS_KEY.publicKey])).toMatch(/^[0-9a-f]{16}$/);
  });

  it('cover every field but the signature, in canonical order', () => {
    const reordered = Object.fromEntries(Object.entries(signed).reverse());
    expect(verifyCommandSignature(reordered, [fleetKey.publicKey])).toBe(signed.signature.keyId);
    expect(commandSigningPayload(signed).toString()).toBe(commandSigningPayload(rollback).toString());
    expect(commandSigningPayload(signed).toString()).not.toContain('signature');
  });

  it('replace an older signature when re-signed', () => {
    const resigned = signCommand(signed, otherKey.privateKey);
    expect(verifyCommandSignature(resigned, [otherKey.publicKey])).toBe(resigned.signature.keyId);
    signatureError(resigned);
  });

  it('refuse a tampered command', () => {
    for (const tampered of [
      { ...signed, fromVersion: '1.1.0' },
      { ...signed, deviceId: 'd2' },
      { ...signed, allowDowngrade: true },
      { ...signed, id: 'c-10' },
    ]) {
      const err = signatureError(tampered);
      expect(err.field).toBe('signature.sig');
      expect(err.message).toMatch(/^rollback\.signature\.sig: the signature by key [0-9a-f]{16} does not match the command$/);
    }
  });

  it('refuse a tampered signature', () => {
    const sig = Buffer.from(signed.signature.sig, 'base64');
    sig[0] ^= 1;
    expect(signatureError({ ...signed, signature: { ...signed.signature, sig: sig.toString('base64') } }).field).toBe('signature.sig');
  });

  it('refuse a signature by a key that is not pinned, naming the key', () => {
    const err = signatureError(signCommand(rollback, otherKey.privateKey));
    expect(err.field).toBe('signature.keyId');
    expect(err.value).toMatch(/^[0-9a-f]{16}$/);
    expect(err.message).toMatch(/is not among the 1 trusted key\(s\)/);
  });

  it('refuse a forged key id on a signature by another key', () => {
    const forged = signCommand(rollback, otherKey.privateKey);
    expect(signatureError({ ...forged, signature: { ...forged.signature, keyId: signed.signature.keyId } }).field).toBe('signature.sig');
  });

  it('refuse an unsigned or malformed signature', () => {
    expect(signatureError(rollback).message).toBe('rollback.signature: the command is not signed');
    expect(signatureError({ ...signed, signature: { keyId: 'xyz', sig: signed.signature.sig } }).message).toMatch(/^rollback\.signature\.keyId: expected 16 lower-case hex/);
    signatureError({ ...signed, signature: 'abc' });
    signatureError(null);
  });

  it('refuse to sign an invalid command, and check the key arguments', () => {
    expect(() => signCommand({ ...rollback, fromVersion: 'one' }, fleetKey.privateKey)).toThrow(/^rollback\.fromVersion: expected a semver/);
    expect(() => signCommand(rollback, generateKeyPair().publicKeyPem)).toThrow(/PEM private key|cannot sign/);
    expect(() => verifyCommandSignature(signed, [])).toThrow(RangeError);
    expect(() => verifyCommandSignature(signed, ['not a key'])).toThrow(/trustedKeys\[0\]/);
  });
});
