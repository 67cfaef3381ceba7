import { KdEdgeError } from '../errors.js';

/** Stable codes of {@link OnnxError}. */
export type OnnxErrorCode =
  | 'ONNX_MALFORMED'
  | 'ONNX_TOO_DEEP'
  | 'ONNX_UNSUPPORTED'
  | 'ONNX_BAD_ATTRIBUTE'
  | 'ONNX_EXTERNAL_DATA'
  | 'ONNX_FILE_NOT_FOUND'
  | 'ONNX_FILE_EMPTY'
  | 'ONNX_READ_FAILED'
  | 'ONNX_WRITE_FAILED'
  | 'ONNX_NOT_ONNX'
  | 'ONNX_NO_GRAPH';

/**
 * An ONNX model or tensor that cannot be read or used. Decoding errors name the message path
 * (`graph.node[12].attribute[0].t.dims`) and the byte offset where the bad data starts.
 */
export class OnnxError extends KdEdgeError {
  declare readonly code: OnnxErrorCode;
  /** Message path of the field being decoded, when known ('' for the top-level message). */
  readonly path?: string;
  /** Byte offset into the decoded buffer, when known. */
  readonly offset?: number;

  constructor(code: OnnxErrorCode, message: string, options?: { cause?: unknown; path?: string; offset?: number }) {
    super(code, message, options);
    if (options?.path !== undefined) this.path = options.path;
    if (options?.offset !== undefined) this.offset = options.offset;
  }
}
