import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { extname, isAbsolute, join, resolve, sep } from 'node:path';
import { IMAGE_EXTENSIONS, isImageFile } from '../data/image.js';
import { SourceError } from './source-error.js';

/** Video file extensions `--source` takes (decoded by ffmpeg). */
export const VIDEO_EXTENSIONS: readonly string[] = ['.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv', '.ts', '.asf', '.gif'];

/** One input of a predict run. */
export interface SourceEntry {
  kind: 'image' | 'video';
  /** Absolute path. */
  path: string;
}

/** True when `file` has one of {@link VIDEO_EXTENSIONS}. */
export function isVideoFile(file: string): boolean {
  return VIDEO_EXTENSIONS.includes(extname(file).toLowerCase());
}

const GLOB_CHARS = /[*?[]/;

/** One path segment of a glob as a regular expression: `*`, `?` and `[...]` (with `!` or `^` negation). */
export function globSegmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, end);
      if (body.startsWith('!') || body.startsWith('^')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  // Dot-files only match a pattern that starts with a dot, as in a shell.
  return new RegExp(`^${segment.startsWith('.') ? '' : '(?!\\.)'}${re}$`);
}

/** Files matching a glob (`*`, `?`, `[...]` within a segment, `**` for any folders), sorted. */
export async function globFiles(pattern: string): Promise<string[]> {
  const abs = resolve(pattern);
  const parts = abs.split(sep);
  const first = parts.findIndex((p) => GLOB_CHARS.test(p));
  if (first < 0) return existsSync(abs) && statSync(abs).isFile() ? [abs] : [];
  const base = parts.slice(0, first).join(sep) || sep;
  const out: string[] = [];
  async function walk(dir: string, rest: string[]): Promise<void> {
    const [seg, ...tail] = rest;
    if (seg === undefined) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    if (seg === '**') {
      await walk(dir, tail);
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) await walk(join(dir, e.name), rest);
      return;
    }
    const re = globSegmentRegExp(seg);
    for (const e of entries) {
      if (!re.test(e.name)) continue;
      const p = join(dir, e.name);
      if (tail.length === 0) {
        if (e.isFile() || (e.isSymbolicLink() && statSync(p, { throwIfNoEntry: false })?.isFile())) out.push(p);
      } else if (e.isDirectory() || e.isSymbolicLink()) await walk(p, tail);
    }
  }
  await walk(base, parts.slice(first));
  return [...new Set(out)].sort(naturalCompare);
}

/** Compares paths with digit runs by value (img2 before img10), as a person sorts file names. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function entry(path: string): SourceEntry | undefined {
  if (isImageFile(path)) return { kind: 'image', path };
  if (isVideoFile(path)) return { kind: 'video', path };
  return undefined;
}

/**
 * The images and videos of a `--source`: one file, a folder's files (not its sub-folders nor hidden files), or a
 * glob. Throws SourceError naming the source when it is missing or yields nothing usable.
 * @example const entries = await listSources('data/images/*.jpg');
 */
export async function listSources(source: string): Promise<SourceEntry[]> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) || /^\d+$/.test(source)) {
    throw new SourceError('PREDICT_SOURCE_INVALID', `--source ${source}: streams, URLs and webcams are not supported; give an image, a folder, a glob or a video file`);
  }
  const abs = isAbsolute(source) ? source : resolve(source);
  const st = statSync(abs, { throwIfNoEntry: false });
  let files: string[];
  if (st?.isDirectory()) {
    files = (await readdir(abs, { withFileTypes: true }))
      // Hidden files are skipped, as ultralytics' glob('*.*') skips them.
      .filter((e) => !e.name.startsWith('.'))
      .filter((e) => e.isFile() || (e.isSymbolicLink() && statSync(join(abs, e.name), { throwIfNoEntry: false })?.isFile()))
      .map((e) => join(abs, e.name))
      .sort(naturalCompare);
  } else if (st?.isFile()) {
    const e = entry(abs);
    if (e === undefined) {
      throw new SourceError('PREDICT_SOURCE_INVALID', `${abs}: not an image (${IMAGE_EXTENSIONS.join(' ')}) or a video (${VIDEO_EXTENSIONS.join(' ')})`);
    }
    return [e];
  } else if (GLOB_CHARS.test(source)) {
    files = await globFiles(abs);
  } else {
    throw new SourceError('PREDICT_SOURCE_INVALID', `${abs}: no such file or folder`);
  }
  const entries = files.map(entry).filter((e): e is SourceEntry => e !== undefined);
  if (entries.length === 0) {
    throw new SourceError('PREDICT_SOURCE_INVALID', `no images or videos found in ${abs} (images: ${IMAGE_EXTENSIONS.join(' ')}; videos: ${VIDEO_EXTENSIONS.join(' ')})`);
  }
  return entries;
}
