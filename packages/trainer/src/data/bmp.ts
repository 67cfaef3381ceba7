/**
 * Windows BMP reader for the files sharp/libvips cannot open: uncompressed 24- and 32-bit
 * (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS), bottom-up and top-down. Alpha is dropped.
 */

/** Header facts of a BMP file, enough to validate it without decoding pixels. */
export interface BmpInfo {
  width: number;
  height: number;
  bitsPerPixel: number;
  topDown: boolean;
  dataOffset: number;
  /** Bytes per pixel row, including the padding to 4 bytes. */
  stride: number;
  /** Channel masks [r, g, b] for 32-bit files. */
  masks: [number, number, number];
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/** True when `buf` starts with the BMP signature `BM`. */
export function isBmp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d;
}

/**
 * Parses and validates a BMP header; throws an Error saying what is unsupported or truncated.
 * `fileSize` is the whole file's length when `buf` holds only its start.
 */
export function readBmpInfo(buf: Uint8Array, fileSize = buf.length): BmpInfo {
  if (!isBmp(buf) || buf.length < 26) throw new Error('not a BMP file');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const headerSize = dv.getUint32(14, true);
  let width: number;
  let rawHeight: number;
  let bitsPerPixel: number;
  let compression = BI_RGB;
  if (headerSize === 12) {
    width = dv.getUint16(18, true);
    rawHeight = dv.getInt16(20, true);
    bitsPerPixel = dv.getUint16(24, true);
  } else if (headerSize >= 40 && buf.length >= 14 + 40) {
    width = dv.getInt32(18, true);
    rawHeight = dv.getInt32(22, true);
    bitsPerPixel = dv.getUint16(28, true);
    compression = dv.getUint32(30, true);
  } else {
    throw new Error(`unsupported BMP header size ${headerSize}`);
  }
  if (width <= 0 || rawHeight === 0) throw new Error(`invalid BMP size ${width}x${rawHeight}`);
  if (bitsPerPixel !== 24 && bitsPerPixel !== 32) {
    throw new Error(`unsupported BMP depth ${bitsPerPixel} bit (24 and 32 are supported)`);
  }
  let masks: [number, number, number] = [0x00ff0000, 0x0000ff00, 0x000000ff];
  if (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    if (bitsPerPixel !== 32) throw new Error('BMP bitfields are supported for 32-bit files only');
    // Masks follow a 40-byte header; V4/V5 headers carry them inside at the same place.
    if (buf.length < 14 + 40 + 12) throw new Error('truncated BMP header');
    masks = [dv.getUint32(54, true), dv.getUint32(58, true), dv.getUint32(62, true)];
  } else if (compression !== BI_RGB) {
    throw new Error(`unsupported BMP compression ${compression} (only uncompressed files are supported)`);
  }
  const height = Math.abs(rawHeight);
  const stride = Math.floor((bitsPerPixel * width + 31) / 32) * 4;
  if (fileSize < dataOffset + stride * height) {
    throw new Error(`truncated BMP: ${fileSize} bytes, pixel data needs ${dataOffset + stride * height}`);
  }
  return { width, height, bitsPerPixel, topDown: rawHeight < 0, dataOffset, stride, masks };
}

/** Shift and scale that turn a channel mask into an 8-bit value. */
function maskReader(mask: number): (px: number) => number {
  if (mask === 0) return () => 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  if (max === 0xff) return (px) => (px >>> shift) & 0xff;
  return (px) => Math.round((((px & mask) >>> 0) >>> shift) * 255 / max);
}

/** Decodes a BMP file to packed RGB, top row first. */
export function decodeBmp(buf: Uint8Array): { data: Uint8Array; width: number; height: number } {
  const info = readBmpInfo(buf);
  const { width, height, stride, dataOffset } = info;
  const out = new Uint8Array(width * height * 3);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const [rr, rg, rb] = info.masks.map(maskReader) as [(p: number) => number, (p: number) => number, (p: number) => number];
  for (let y = 0; y < height; y++) {
    const srcRow = dataOffset + (info.topDown ? y : height - 1 - y) * stride;
    let o = y * width * 3;
    if (info.bitsPerPixel === 24) {
      for (let x = 0, s = srcRow; x < width; x++, s += 3) {
        out[o++] = buf[s + 2]!;
        out[o++] = buf[s + 1]!;
        out[o++] = buf[s]!;
      }
    } else {
      for (let x = 0, s = srcRow; x < width; x++, s += 4) {
        const px = dv.getUint32(s, true);
        out[o++] = rr(px);
        out[o++] = rg(px);
        out[o++] = rb(px);
      }
    }
  }
  return { data: out, width, height };
}
