import type { OptionsSchema } from '../config.js';
import { normaliseKey } from '../config.js';
import { readCheckpointMeta } from '../train/checkpoint.js';
import { latestCheckpoint } from '../train/latest-run.js';

/**
 * The settings a `--resume` continues with, as the lowest option layer: a resumed run needs neither
 * `--data` nor (for distill) `--teacher` again. A bare `--resume` (or `latest`) takes the newest
 * `last.kdw` below the project folder. `read` checks that the checkpoint is one this command continues
 * (a detection one by default). Returns {} when the command does not resume.
 */
export async function resumeLayer(
  schema: OptionsSchema, layers: Record<string, unknown>[],
  read: (path: string) => Promise<{ file: string; meta: Record<string, unknown> }> = readCheckpointMeta,
): Promise<Record<string, unknown>> {
  let resume: unknown;
  let project: unknown;
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (normaliseKey(k) === 'resume' && v !== undefined) resume = v;
      if (normaliseKey(k) === 'project' && v !== undefined) project = v;
    }
  }
  if (resume === undefined || resume === '' || resume === false) return {};
  const spec = schema.project;
  const dir = typeof project === 'string' ? project : spec?.type === 'string' && spec.default ? spec.default : 'runs';
  const path = resume === true || resume === 'latest' ? latestCheckpoint(dir) : String(resume);
  // The header alone: the run reads the whole checkpoint once, when it starts.
  const ck = await read(path);
  const saved = { ...(ck.meta.opt as object), ...(typeof ck.meta.distill === 'object' && ck.meta.distill !== null ? ck.meta.distill : {}) } as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(saved)) if (k in schema && v !== undefined) out[k] = v;
  out.resume = ck.file;
  return out;
}
