import { existsSync, readFileSync } from 'node:fs';
import { Command } from 'commander';
import { KdEdgeError } from '@kd-edge/core';
import {
  HYP_KEYS, readYamlMapping, resolveHyp, resolveOptions, SYNTH_SCHEMA, TRAIN_SCHEMA, VAL_SCHEMA,
} from '../config.js';
import { synthesizeDataset } from '../data/synth.js';
import { train } from '../train/trainer.js';
import { consoleLogger } from '../util/logger.js';
import { runVal } from '../val/run-val.js';
import { addSchemaOptions, givenOptions } from './schema-options.js';

/** The trainer's version from its package.json, found from sources (src/cli) or a build (dist, dist/bin). */
function packageVersion(): string {
  for (const rel of ['../../package.json', '../package.json', '../../../package.json']) {
    const file = new URL(rel, import.meta.url);
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === '@kd-edge/trainer' && pkg.version) return pkg.version;
  }
  return '0.0.0';
}

const VERSION = packageVersion();

/** Reads `--cfg FILE` (if any) and layers the flags over it. */
async function layers(opts: Record<string, unknown>): Promise<{ file: Record<string, unknown>; flags: Record<string, unknown> }> {
  const file = typeof opts.cfg === 'string' ? await readYamlMapping(opts.cfg, 'cfg') : {};
  return { file, flags: givenOptions(opts) };
}

/** The `kd-trainer` command line. */
export function buildProgram(): Command {
  const program = new Command('kd-trainer')
    .description('Train, validate and distil YOLOv5-family detectors on TensorFlow.js')
    .version(VERSION)
    .showHelpAfterError();

  const trainCmd = new Command('train')
    .description('train a detector on an ultralytics-format dataset')
    .option('--cfg <file>', 'YAML file with any of these options (and hyperparameters); flags override it')
    .option('--verbose', 'debug output');
  addSchemaOptions(trainCmd, TRAIN_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await layers(opts);
    delete flags.verbose;
    const { config, extra } = resolveOptions(TRAIN_SCHEMA, [file, flags], HYP_KEYS);
    const hypFile = config.hyp ? await readYamlMapping(config.hyp, 'hyp') : {};
    const hyp = resolveHyp(hypFile, extra);
    const logger = consoleLogger(Boolean(opts.verbose));
    const ac = new AbortController();
    const onSigint = () => {
      if (ac.signal.aborted) process.exit(130);
      process.stderr.write('\nInterrupted: saving a checkpoint after this step (Ctrl-C again to quit now)\n');
      ac.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const r = await train(config, hyp, { logger, signal: ac.signal });
      if (r.interrupted) process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSigint);
    }
  });

  const valCmd = new Command('val')
    .description('validate saved weights on a dataset split and print the metrics table')
    .option('--cfg <file>', 'YAML file with any of these options');
  addSchemaOptions(valCmd, VAL_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await layers(opts);
    const { config } = resolveOptions(VAL_SCHEMA, [file, flags]);
    await runVal(config, { logger: consoleLogger(false, config.json ? process.stderr : process.stdout) });
  });

  const synthCmd = new Command('synth')
    .description('write a procedural detection dataset (coloured shapes) in YOLO format')
    .option('--cfg <file>', 'YAML file with any of these options');
  addSchemaOptions(synthCmd, SYNTH_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await layers(opts);
    const { config } = resolveOptions(SYNTH_SCHEMA, [file, flags]);
    const t0 = performance.now();
    const r = await synthesizeDataset({ out: config.out, train: config.train, val: config.val, imgsz: config.imgsz, classes: config.classes, seed: config.seed });
    process.stdout.write(`wrote ${config.train} train + ${config.val} val images in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${r.yaml}\n`);
  });
  const dataCmd = new Command('data').description('dataset tools').addCommand(synthCmd);

  program.addCommand(trainCmd).addCommand(valCmd).addCommand(dataCmd);
  return program;
}

/** Runs the CLI; known errors print one line (with their code) instead of a stack. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof KdEdgeError) {
      process.stderr.write(`kd-trainer: ${e.message} [${e.code}]\n`);
      process.exitCode = 2;
    } else {
      throw e;
    }
  }
}
