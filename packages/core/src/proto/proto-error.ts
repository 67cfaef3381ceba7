import { KdEdgeError } from '../errors.js';

/**
 * Malformed protobuf wire data: a truncated or over-long varint, a length past the end of the
 * enclosing message, an invalid wire type. `offset` is the byte where the bad data starts.
 */
export class ProtoDecodeError extends KdEdgeError {
  /** Byte offset into the buffer given to the reader. */
  readonly offset: number;
  /** The problem without the offset, for callers that compose their own message. */
  readonly detail: string;

  constructor(detail: string, offset: number) {
    super('PROTO_MALFORMED', `protobuf: ${detail} at byte ${offset}`);
    this.offset = offset;
    this.detail = detail;
  }
}
