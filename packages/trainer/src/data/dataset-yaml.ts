/**
 * Reads an ultralytics dataset YAML (`path`, `train`, `val`, `test`, `names`, `nc`) and checks it
 * before any training starts.
 *
 * A relative `path` is resolved against the YAML file's folder first, so a dataset folder can be moved
 * or referenced from anywhere, then against the working directory as ultralytics does. Without `path`,
 * the root is the YAML's folder.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import { DatasetError } from '../errors.js';
import type { DatasetConfig } from './types.js';

function fail(file: string, field: string, what: string): never {
  throw new DatasetError(`${file}: ${field}: ${what}`);
}

function splitSources(file: string, root: string, field: string, value: unknown): string[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) fail(file, field, 'must name at least one folder or .txt list');
  return list.map((v, i) => {
    if (typeof v !== 'string' || v.trim() === '') {
      fail(file, Array.isArray(value) ? `${field}[${i}]` : field, `must be a folder or .txt list path, got ${JSON.stringify(v)}`);
    }
    const p = isAbsolute(v) ? v : resolve(root, v);
    if (!existsSync(p)) fail(file, field, `${p} does not exist`);
    return p;
  });
}

function parseNames(file: string, doc: Record<string, unknown>): string[] {
  const { names, nc } = doc;
  if (nc !== undefined && (!Number.isInteger(nc) || (nc as number) < 1)) fail(file, 'nc', `must be a positive integer, got ${JSON.stringify(nc)}`);
  let out: string[];
  if (names === undefined || names === null) {
    // ultralytics YOLOv5 accepts nc alone and names the classes class0, class1, ...
    if (nc === undefined) fail(file, 'names', 'missing (a list of class names, or a map {0: name, ...})');
    out = Array.from({ length: nc as number }, (_, i) => `class${i}`);
  } else if (Array.isArray(names)) {
    out = names.map((n, i) => {
      if (typeof n !== 'string' && typeof n !== 'number') fail(file, `names[${i}]`, `must be a string, got ${JSON.stringify(n)}`);
      return String(n);
    });
  } else if (typeof names === 'object') {
    const entries = Object.entries(names as Record<string, unknown>);
    out = new Array<string>(entries.length);
    for (const [k, v] of entries) {
      const id = Number(k);
      if (!Number.isInteger(id) || id < 0 || id >= entries.length) {
        fail(file, 'names', `map keys must be the class ids 0..${entries.length - 1} without gaps, got key ${JSON.stringify(k)}`);
      }
      if (typeof v !== 'string' && typeof v !== 'number') fail(file, `names.${k}`, `must be a string, got ${JSON.stringify(v)}`);
      out[id] = String(v);
    }
  } else {
    fail(file, 'names', `must be a list or a map {0: name, ...}, got ${JSON.stringify(names)}`);
  }
  if (out.length === 0) fail(file, 'names', 'must name at least one class');
  if (nc !== undefined && nc !== out.length) fail(file, 'nc', `is ${nc} but names has ${out.length} entries`);
  return out;
}

/**
 * Loads and validates a dataset YAML; every path in the result is absolute and exists.
 * Throws DatasetError naming the file and the field at fault.
 * @example
 * const cfg = await loadDatasetConfig('datasets/shapes/data.yaml');
 * const items = await scanSplit(cfg.train, cfg.nc, logger);
 */
export async function loadDatasetConfig(yamlPath: string): Promise<DatasetConfig> {
  const file = resolve(yamlPath);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DatasetError(`dataset YAML not found or unreadable: ${file}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new DatasetError(`${file}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail(file, '(top level)', 'must be a mapping with train, val and names');
  const d = doc as Record<string, unknown>;
  let root = dirname(file);
  if (d.path !== undefined && d.path !== null && d.path !== '') {
    if (typeof d.path !== 'string') fail(file, 'path', `must be a string, got ${JSON.stringify(d.path)}`);
    const besideYaml = resolve(root, d.path);
    // ultralytics resolves a relative path against the working directory: accept that too, so its
    // own dataset YAMLs (`path: ../datasets/coco128`) work when run from the same folder.
    const fromCwd = resolve(d.path);
    if (existsSync(besideYaml)) root = besideYaml;
    else if (existsSync(fromCwd)) root = fromCwd;
    else fail(file, 'path', `${besideYaml} does not exist${fromCwd !== besideYaml ? ` (nor ${fromCwd})` : ''}`);
  }
  for (const k of ['train', 'val'] as const) {
    if (d[k] === undefined || d[k] === null || d[k] === '') fail(file, k, 'missing (a folder, a .txt list of images, or a list of those)');
  }
  const names = parseNames(file, d);
  const config: DatasetConfig = {
    file, root, names, nc: names.length,
    train: splitSources(file, root, 'train', d.train),
    val: splitSources(file, root, 'val', d.val),
  };
  if (d.test !== undefined && d.test !== null && d.test !== '') config.test = splitSources(file, root, 'test', d.test);
  return config;
}
