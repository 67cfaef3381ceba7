import type { Logger } from '../util/logger.js';

/** ultralytics' check_img_size: an image size not a multiple of the largest stride is rounded up, with a warning. */
export function checkImgSize(imgsz: number, stride: number, log: Logger): number {
  const size = Math.max(Math.ceil(imgsz / stride) * stride, 2 * stride);
  if (size !== imgsz) log.warn(`--img-size ${imgsz} must be multiple of max stride ${stride}, updating to ${size}`);
  return size;
}
