import { PackageError } from '../package/errors.js';
import { parseManifest, type Manifest } from '../package/manifest.js';
import { MAX_JSON_MESSAGE_BYTES, MAX_JSON_MESSAGE_DEPTH, PROTOCOL_VERSION } from './common.js';
import { jsonTextDepthExcess, jsonValueDepthExcess, type DepthExcess } from './json-depth.js';
import { commandRoot } from './command.js';
import { showValue } from '../util/show-value.js';
import { ProtocolError } from './protocol-error.js';
import { MESSAGE_SCHEMAS, type MessageTypes } from './schemas.js';
import { MESSAGE_KINDS, type MessageKind } from './topics.js';
import { validateWith } from './validate.js';

/** Options of {@link parseMessage}. */
export interface ParseMessageOptions {
  /** Largest payload accepted as bytes or text, in UTF-8 bytes (default 1 MiB). */
  maxBytes?: number;
  /** Deepest nesting of objects and arrays accepted (default {@link MAX_JSON_MESSAGE_DEPTH}). */
  maxDepth?: number;
}

function depthError(kind: MessageKind, excess: DepthExcess, maxDepth: number): ProtocolError {
  const found = excess.depth > maxDepth + 1 ? `, ${excess.depth} levels` : '';
  return new ProtocolError('PROTOCOL_JSON', `${kind}: the payload nests more than the ${maxDepth} levels allowed (at ${excess.field}${found})`, {
    field: excess.field,
    value: excess.depth,
  });
}

function readJson(input: Uint8Array | string, kind: MessageKind, maxBytes: number, maxDepth: number): unknown {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > maxBytes) throw new ProtocolError('PROTOCOL_JSON', `${kind}: the payload has ${size} bytes, more than the ${maxBytes} allowed`, { value: size });
  if (size === 0) throw new ProtocolError('PROTOCOL_JSON', `${kind}: the payload is empty (a cleared retained message?)`);
  let text: string;
  try {
    text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch (err) {
    throw new ProtocolError('PROTOCOL_JSON', `${kind}: the payload is not UTF-8`, { cause: err });
  }
  const excess = jsonTextDepthExcess(text, maxDepth);
  if (excess !== undefined) throw depthError(kind, excess, maxDepth);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ProtocolError('PROTOCOL_JSON', `${kind}: the payload is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

function parseManifestMessage(json: unknown): Manifest {
  try {
    return parseManifest(json);
  } catch (err) {
    if (!(err instanceof PackageError)) throw err;
    const field = err.field ?? '(root)';
    const code = err.code === 'PACKAGE_MANIFEST_VERSION' ? 'PROTOCOL_VERSION' : 'PROTOCOL_SCHEMA';
    throw new ProtocolError(code, `manifest.${field}: ${err.message}`, { field, issues: [{ field, message: err.message }], cause: err });
  }
}

/**
 * Parse a protocol v1 message of `kind` from the wire (bytes or text, at most 1 MiB) or from an
 * already-parsed object, and return it typed. Throws ProtocolError: 'PROTOCOL_JSON' (not UTF-8 JSON,
 * empty, too large, nested deeper than 64 levels), 'PROTOCOL_VERSION' (an integer `v` other than 1; `value` holds it), or
 * 'PROTOCOL_SCHEMA' (message names the field, e.g. `deploy.package.sha256: expected 64 lower-case hex
 * characters, got "abc"`). Unknown extra fields are kept; the manifest kind is checked by parseManifest
 * (its signature is not verified here).
 * @example
 * const cmd = parseMessage('cmd', payload);
 * if (cmd.command === 'deploy') console.log(cmd.package.version);
 */
export function parseMessage<K extends MessageKind>(kind: K, input: Uint8Array | string | object, options: ParseMessageOptions = {}): MessageTypes[K] {
  if (!(MESSAGE_KINDS as readonly string[]).includes(kind)) throw new RangeError(`kind must be one of ${MESSAGE_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  const maxBytes = options.maxBytes ?? MAX_JSON_MESSAGE_BYTES;
  const maxDepth = options.maxDepth ?? MAX_JSON_MESSAGE_DEPTH;
  let json: unknown;
  if (typeof input === 'string' || input instanceof Uint8Array) json = readJson(input, kind, maxBytes, maxDepth);
  else {
    const excess = jsonValueDepthExcess(input, maxDepth);
    if (excess !== undefined) throw depthError(kind, excess, maxDepth);
    json = input;
  }
  if (kind === 'manifest') return parseManifestMessage(json) as MessageTypes[K];
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ProtocolError('PROTOCOL_SCHEMA', `${kind}: expected a JSON object, got ${showValue(json)}`, { field: '(root)' });
  }
  const { v, type } = json as { v?: unknown; type?: unknown };
  const root = kind === 'cmd' ? commandRoot(json) : kind;
  // The version is read before anything else: a newer peer's message may differ in every other field.
  if (Number.isSafeInteger(v) && v !== PROTOCOL_VERSION) {
    throw new ProtocolError('PROTOCOL_VERSION', `${root}.v: protocol version ${showValue(v)} is not supported (this build speaks ${PROTOCOL_VERSION})`, {
      field: 'v',
      value: v,
    });
  }
  if (v !== PROTOCOL_VERSION) {
    throw new ProtocolError('PROTOCOL_SCHEMA', `${root}.v: expected ${PROTOCOL_VERSION}, got ${showValue(v)}`, { field: 'v', issues: [{ field: 'v', message: `expected ${PROTOCOL_VERSION}` }] });
  }
  if (type !== kind) {
    throw new ProtocolError('PROTOCOL_SCHEMA', `${root}.type: expected ${JSON.stringify(kind)}, got ${showValue(type)}`, {
      field: 'type',
      issues: [{ field: 'type', message: `expected ${JSON.stringify(kind)}` }],
    });
  }
  return validateWith(MESSAGE_SCHEMAS[kind as Exclude<K, 'manifest'>], json, root) as MessageTypes[K];
}
