import { KdEdgeError } from '@kd-edge/core';

/** A TFRecord / tfevents file or protobuf message that cannot be decoded: bad CRC, truncation, bad wire data. */
export class CorruptRecordError extends KdEdgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RECORD_CORRUPT', message, options);
  }
}
