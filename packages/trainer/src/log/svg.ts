/** Escapes text for use inside SVG/XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Font stack for SVG text rendered by sharp/librsvg; DejaVu Sans is present on most Linux images. */
export const SVG_FONT = 'DejaVu Sans, Arial, Helvetica, sans-serif';

/** Rounds a coordinate to 2 decimals so SVG strings stay short. */
export function r2(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}
