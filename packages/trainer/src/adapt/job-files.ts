import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileDurable } from '@kd-edge/core';
import type { AdaptFigures } from './evaluate.js';
import type { AdaptExport } from './export-adapted.js';
import type { TrainingRecord } from './fine-tune.js';

/** Where a job keeps its files, all under one folder. */
export interface JobPaths {
  dir: string;
  /** The YOLO dataset: images/{train,val}, labels/{train,val}, data.yaml, labels.json. */
  data: string;
  dataYaml: string;
  /** Written last by the labelling: its presence marks `data/` complete. */
  labels: string;
  /** A data YAML for a `--val` folder (a package's val/), beside the job's own. */
  valYaml: string;
  /** The distillation run: weights/last.kdw, weights/best.kdw, results.csv, … */
  run: string;
  last: string;
  best: string;
  /** The job's progress between calls: training seconds, and each stage's outcome once it is done. */
  state: string;
  /** The job's report, written last. */
  report: string;
  export: string;
}

/** The files of the job in `dir`. */
export function jobPaths(dir: string): JobPaths {
  const d = resolve(dir);
  const run = join(d, 'run');
  return {
    dir: d, data: join(d, 'data'), dataYaml: join(d, 'data', 'data.yaml'), labels: join(d, 'data', 'labels.json'), valYaml: join(d, 'val.yaml'),
    run, last: join(run, 'weights', 'last.kdw'), best: join(run, 'weights', 'best.kdw'),
    state: join(d, 'job.json'), report: join(d, 'adapt.json'), export: join(d, 'export'),
  };
}

/** What job.json keeps between calls of a job. */
export interface JobState {
  version: 1;
  /** Seconds spent training, over every call (the time budget's count). */
  trainSeconds: number;
  /** Calls that continued the training from a checkpoint. */
  resumes: number;
  /** Set once training is over for good (completed, out of budget or patience). */
  training?: TrainingRecord;
  /** Set once both models are evaluated. */
  evaluation?: AdaptFigures;
  /** Set once an accepted model is exported. */
  export?: AdaptExport;
}

/** The job's state, or a fresh one. */
export async function readJobState(paths: JobPaths): Promise<JobState> {
  const s = await readJson<JobState>(paths.state);
  return s?.version === 1 ? s : { version: 1, trainSeconds: 0, resumes: 0 };
}

/** Replaces job.json (atomically, durably). */
export async function writeJobState(paths: JobPaths, state: JobState): Promise<void> {
  await writeJson(paths.state, state);
}

/** A JSON file's content, or undefined when it is absent or unreadable as JSON. */
export async function readJson<T>(file: string): Promise<T | undefined> {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Writes `value` as indented JSON through a temporary file, fsync and rename. */
export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileDurable(file, `${JSON.stringify(value, null, 2)}\n`);
}
