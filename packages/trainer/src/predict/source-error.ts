import { KdEdgeError } from '@kd-edge/core';

/** Codes of {@link SourceError}. */
export type SourceErrorCode = 'PREDICT_SOURCE_INVALID' | 'PREDICT_IMAGE_UNREADABLE' | 'PREDICT_FFMPEG_MISSING' | 'PREDICT_VIDEO_FAILED';

/** A `--source` that cannot be used: nothing found, an unreadable image, a video without ffmpeg. */
export class SourceError extends KdEdgeError {
  constructor(code: SourceErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
