/** One message waiting in the outbox, as the caller gave it. */
export interface OutboxRecord {
  topic: string;
  payload: Buffer;
  qos: 1 | 2;
  retain: boolean;
  /** When the message was queued, in milliseconds since the epoch. */
  queuedAt: number;
}

const MAGIC = Buffer.from('KDO1', 'latin1');
const PREFIX_BYTES = MAGIC.length + 4;

/**
 * Serialises a record as one outbox file: 'KDO1', a uint32 BE header length, a UTF-8 JSON header
 * `{topic, qos, retain, queuedAt, size}`, then the payload bytes.
 */
export function encodeOutboxRecord(record: OutboxRecord): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      topic: record.topic,
      qos: record.qos,
      retain: record.retain,
      queuedAt: record.queuedAt,
      size: record.payload.length,
    }),
    'utf8',
  );
  const prefix = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(header.length, MAGIC.length);
  return Buffer.concat([prefix, header, record.payload]);
}

/** Reads back {@link encodeOutboxRecord}'s bytes; returns a reason string instead of a record when they are damaged. */
export function decodeOutboxRecord(bytes: Buffer): OutboxRecord | string {
  if (bytes.length < PREFIX_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return 'bad magic';
  const headerLength = bytes.readUInt32BE(MAGIC.length);
  const headerEnd = PREFIX_BYTES + headerLength;
  if (headerEnd > bytes.length) return 'truncated header';
  let header: unknown;
  try {
    header = JSON.parse(bytes.subarray(PREFIX_BYTES, headerEnd).toString('utf8'));
  } catch {
    return 'header is not JSON';
  }
  if (!isHeader(header)) return 'header fields missing or of the wrong type';
  // The size check catches a payload cut short as well as trailing garbage.
  if (bytes.length - headerEnd !== header.size) return `payload is ${bytes.length - headerEnd} bytes, header says ${header.size}`;
  return {
    topic: header.topic,
    qos: header.qos,
    retain: header.retain,
    queuedAt: header.queuedAt,
    payload: Buffer.from(bytes.subarray(headerEnd)),
  };
}

/** The topic of an encoded record read from its first bytes only, or undefined when they do not parse. */
export function peekOutboxTopic(head: Buffer): string | undefined {
  if (head.length < PREFIX_BYTES || !head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const headerEnd = PREFIX_BYTES + head.readUInt32BE(MAGIC.length);
  if (headerEnd > head.length) return undefined;
  try {
    const header: unknown = JSON.parse(head.subarray(PREFIX_BYTES, headerEnd).toString('utf8'));
    return isHeader(header) ? header.topic : undefined;
  } catch {
    return undefined;
  }
}

interface Header {
  topic: string;
  qos: 1 | 2;
  retain: boolean;
  queuedAt: number;
  size: number;
}

function isHeader(value: unknown): value is Header {
  if (typeof value !== 'object' || value === null) return false;
  const h = value as Record<string, unknown>;
  return (
    typeof h.topic === 'string' &&
    (h.qos === 1 || h.qos === 2) &&
    typeof h.retain === 'boolean' &&
    typeof h.queuedAt === 'number' &&
    typeof h.size === 'number' &&
    Number.isInteger(h.size) &&
    h.size >= 0
  );
}
