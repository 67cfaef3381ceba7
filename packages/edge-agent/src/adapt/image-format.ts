/** Encoded image formats the agent's frame sources deliver, told apart by their first bytes. */
export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'bmp';

/** The file extension each {@link ImageFormat} is stored under (without the dot). */
export const IMAGE_FORMAT_EXTENSIONS: Readonly<Record<ImageFormat, string>> = { jpeg: 'jpg', png: 'png', webp: 'webp', bmp: 'bmp' };

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(buf: Uint8Array, bytes: readonly number[], at = 0): boolean {
  if (buf.length < at + bytes.length) return false;
  return bytes.every((b, i) => buf[at + i] === b);
}

/**
 * The format of an encoded image from its magic bytes, or undefined for anything else. The content decides, not a
 * file name: a camera that writes PNG bytes to `frame.jpg` still gets a `.png` capture.
 * @example imageFormat(await readFile('frame.jpg')) // 'jpeg'
 */
export function imageFormat(buf: Uint8Array): ImageFormat | undefined {
  if (startsWith(buf, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(buf, PNG_SIGNATURE)) return 'png';
  // RIFF container: "RIFF" <size:u32le> "WEBP".
  if (startsWith(buf, [0x52, 0x49, 0x46, 0x46]) && startsWith(buf, [0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  // "BM" is short, so also ask for the smallest whole header (14-byte file header + 40-byte info header).
  if (startsWith(buf, [0x42, 0x4d]) && buf.length >= 54) return 'bmp';
  return undefined;
}
