import { Command } from 'commander';
import { KdEdgeError } from '@kd-edge/core';
import { readClassifyCheckpointMeta, type ClassifyCommandName } from '../classify/checkpoint.js';
import { CLASSIFY_DISTILL_SCHEMA, CLASSIFY_TRAIN_SCHEMA, CLASSIFY_VAL_SCHEMA } from '../classify/classify-schema.js';
import { runClassifyDistill } from '../classify/distill.js';
import { runClassifyVal } from '../classify/run-val.js';
import { trainClassifier } from '../classify/train.js';
import { resolveOptions, type OptionsSchema } from '../config.js';
import { consoleLogger, type Logger } from '../util/logger.js';
import { resumeLayer } from './resume-layer.js';
import { addSchemaOptions, optionLayers } from './schema-options.js';

// What a resumed run takes from the command line: where to compute, and where a bare --resume looks.
const RESUME_FLAGS = new Set(['resume', 'backend', 'device', 'threads', 'project']);

/**
 * A classify subcommand: `--cfg` and flags resolved against its schema (over a checkpoint's options with
 * `--resume`, for the commands that train), then `action` with a console logger and Ctrl-C as a signal.
 */
function subcommand<S extends OptionsSchema>(
  name: ClassifyCommandName | 'val', description: string, schema: S,
  action: (config: ReturnType<typeof resolveOptions<S>>['config'], log: Logger, signal: AbortSignal) => Promise<{ interrupted?: boolean } | unknown>,
): Command {
  const cmd = new Command(name).description(description)
    .option('--cfg <file>', 'YAML file with any of these options; flags override it')
    .option('--verbose', 'debug output');
  return addSchemaOptions(cmd, schema).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    delete flags.verbose;
    // --resume: the run's own options (teacher and KD settings included) as the lowest layer, so no --data is needed.
    const resumed = name === 'val' ? {} : await resumeLayer(schema, [file, flags], (p) => readClassifyCheckpointMeta(p, name));
    if (resumed.resume !== undefined) flags.resume = resumed.resume;
    const { config } = resolveOptions(schema, [resumed, file, flags]);
    const json = (config as { json?: boolean }).json === true;
    const log = consoleLogger(Boolean(opts.verbose), json ? process.stderr : process.stdout);
    const ignored = Object.keys(flags).filter((k) => !RESUME_FLAGS.has(k));
    if (resumed.resume !== undefined && ignored.length > 0) {
      log.warn(`--resume continues the run with its own options: ${ignored.map((k) => `--${k.replace(/_/g, '-')}`).join(', ')} ignored`);
    }
    const ac = new AbortController();
    const onSigint = () => {
      if (ac.signal.aborted) process.exit(130);
      process.stderr.write(`\nInterrupted: saving a checkpoint (last.kdw) after this step; kd-trainer classify ${name} --resume continues it (Ctrl-C again to quit now)\n`);
      ac.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const r = await action(config, log, ac.signal);
      if ((r as { interrupted?: boolean } | undefined)?.interrupted) process.exitCode = 130;
    } catch (e) {
      // Stopped in the --compare baseline: nothing half-done to report beyond the message.
      if (!(e instanceof KdEdgeError && e.code === 'TRAIN_INTERRUPTED')) throw e;
      log.info(e.message);
      process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSigint);
    }
  });
}

/**
 * `kd-trainer classify train | val | distill`: image classification on an ultralytics classify
 * dataset folder (ROOT/train/<class>/*, ROOT/val/<class>/*), as YOLOv5 v7.0's classify/ scripts.
 */
export function classifyCommand(): Command {
  const train = subcommand('train', 'train a YOLOv5-cls classifier on a dataset folder (ultralytics classify/train.py); Ctrl-C saves weights/last.kdw, --resume continues it', CLASSIFY_TRAIN_SCHEMA,
    (cfg, logger, signal) => trainClassifier(cfg, { logger, signal }));
  const val = subcommand('val', 'validate a classifier (.kdw or ONNX) and print top-1 / top-5 accuracy per class (ultralytics classify/val.py)', CLASSIFY_VAL_SCHEMA,
    (cfg, logger) => runClassifyVal(cfg, { logger }));
  const distill = subcommand('distill', "train a student classifier on a frozen teacher's soft targets (Hinton KD: α·KD + (1−α)·CE); --resume continues a stopped run with its teacher", CLASSIFY_DISTILL_SCHEMA,
    (cfg, logger, signal) => runClassifyDistill(cfg, { logger, signal }));
  return new Command('classify').description('image classification: train, val and distill YOLOv5-cls models').addCommand(train).addCommand(val).addCommand(distill);
}
