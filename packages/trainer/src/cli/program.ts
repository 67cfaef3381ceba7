import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import {
  formatInspection, generateKeyPair, inspectModel, KdEdgeError, loadPublicKey, manifestRole, PACKAGE_ROLES, readOnnxFile, verifyPackage, writeKeyPair,
  type PackageRole,
} from '@kd-edge/core';
import { DISTILL_SCHEMA } from '../distill/distill-schema.js';
import { convertWeights } from '../import/convert.js';
import { runDistill } from '../distill/run-distill.js';
import { EXPORT_SCHEMA } from '../export/export-schema.js';
import { formatExportTable, runExport } from '../export/run-export.js';
import { runPackage } from '../export/run-package.js';
import { REPLAY_SPLITS, type ReplaySplit } from '../export/package-replay.js';
import { predictCommand } from '../predict/predict-command.js';
import { resolveOptions, SYNTH_SCHEMA, TRAIN_SCHEMA, VAL_SCHEMA } from '../config.js';
import { synthesizeDataset } from '../data/synth.js';
import { synthesizeClassifyDataset } from '../data/synth-classify.js';
import type { ShapeKind } from '../data/synth-shapes.js';
import { train } from '../train/trainer.js';
import { consoleLogger } from '../util/logger.js';
import { runVal } from '../val/run-val.js';
import { adaptCommand } from './adapt-command.js';
import { classifyCommand } from './classify-command.js';
import { addSchemaOptions, optionLayers } from './schema-options.js';
import { trainingCommand } from './training-command.js';

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

/** The `kd-trainer` command line. */
export function buildProgram(): Command {
  const program = new Command('kd-trainer')
    .description('Train, validate and distil YOLOv5-family detectors on TensorFlow.js')
    .version(VERSION)
    // Options after a subcommand belong to it: `package --version 1.2.0` is the package's version.
    .enablePositionalOptions()
    .showHelpAfterError();

  const trainCmd = trainingCommand('train', 'train a detector on an ultralytics-format dataset', TRAIN_SCHEMA, train);
  const distillCmd = trainingCommand('distill', 'train a student detector with knowledge distillation from a frozen teacher (ONNX or .kdw)', DISTILL_SCHEMA, runDistill);

  const valCmd = new Command('val')
    .description('validate saved weights on a dataset split and print the metrics table')
    .option('--cfg <file>', 'YAML file with any of these options');
  addSchemaOptions(valCmd, VAL_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    const { config } = resolveOptions(VAL_SCHEMA, [file, flags]);
    await runVal(config, { logger: consoleLogger(false, config.json ? process.stderr : process.stdout) });
  });

  const synthCmd = new Command('synth')
    .description('write a procedural dataset of coloured shapes: detection in YOLO format (default), or classification folders (--task classify)')
    .option('--cfg <file>', 'YAML file with any of these options');
  addSchemaOptions(synthCmd, SYNTH_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    const { config } = resolveOptions(SYNTH_SCHEMA, [file, flags]);
    const t0 = performance.now();
    const shapes = config.shapes ? config.shapes.split(',').map((k) => k.trim()).filter(Boolean) as ShapeKind[] : undefined;
    if (config.task === 'classify') {
      const c = await synthesizeClassifyDataset({ out: config.out, train: config.train, val: config.val, imgsz: config.imgsz, classes: config.classes, ...(shapes ? { shapes } : {}), difficulty: config.difficulty, domain: config.domain, seed: config.seed });
      process.stdout.write(`wrote ${config.train} train + ${config.val} val images of ${c.names.length} classes (${c.names.join(', ')}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${c.root}\n`);
      return;
    }
    const r = await synthesizeDataset({ out: config.out, train: config.train, val: config.val, imgsz: config.imgsz, classes: config.classes, ...(shapes ? { shapes } : {}), difficulty: config.difficulty, domain: config.domain, seed: config.seed });
    process.stdout.write(`wrote ${config.train} train + ${config.val} val images in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${r.yaml}\n`);
  });
  const dataCmd = new Command('data').description('dataset tools').addCommand(synthCmd);

  const exportCmd = new Command('export')
    .description('export weights to ONNX (fp32, fp16, int8, TensorRT calibration), then validate and time every artifact')
    .option('--cfg <file>', 'YAML file with any of these options');
  addSchemaOptions(exportCmd, EXPORT_SCHEMA).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    const { config } = resolveOptions(EXPORT_SCHEMA, [file, flags]);
    const log = consoleLogger(false, config.json ? process.stderr : process.stdout);
    const r = await runExport(config, { logger: log });
    if (config.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      for (const line of formatExportTable(r.rows)) log.info(line);
      if (r.calibration) log.info(`calibration: ${r.calibration.images} images, ${r.calibration.method}, ${r.calibration.perImageMs.toFixed(1)} ms/image`);
      if (r.sensitivityTop?.length) {
        log.info('INT8 sensitivity, worst tensors (SQNR dB; keep their nodes in float with --exclude):');
        for (const t of r.sensitivityTop.slice(0, 5)) log.info(`  ${t.sqnrDb.toFixed(1).padStart(6)}  ${t.opType.padEnd(10)} ${t.tensor}`);
      }
      for (const n of r.notes) log.info(`note: ${n}`);
    }
  });

  const packageCmd = new Command('package')
    .description('make a signed model package (folder and .tar) from an export folder')
    .requiredOption('--from <dir>', 'export folder written by kd-trainer export')
    .requiredOption('--name <name>', 'package name (lower-case slug)')
    .requiredOption('--version <semver>', 'package version (semver)')
    .requiredOption('--sign <key>', 'Ed25519 private key (PEM) from kd-trainer keys gen')
    .option('--out <dir>', 'package folder (default: <name>-<version> beside the export folder)')
    .option('--val-data <yaml>', 'dataset YAML: copy val images for the on-device accuracy check')
    .option('--val-images <n>', 'images in val/ (default 16)', (v) => Number.parseInt(v, 10))
    .option('--no-tar', 'do not write <out>.tar')
    .addOption(new Option('--role <role>', 'model: the package serves; teacher: it only labels frames for on-device adaptation').choices(PACKAGE_ROLES).default('model'))
    .option('--weights-file <kdw>', 'ship these kd-trainer weights (.kdw, same classes) as weights/model.kdw for on-device fine-tuning')
    .option('--replay-images <n>', 'copy n images of --val-data (sampled by content and seed) into replay/images, their label files into replay/labels, for on-device adaptation to train on so the model keeps its original domain (default 0: none)', (v) => Number(v))
    .addOption(new Option('--replay-from <split>', 'the split of --val-data the replay images come from').choices(REPLAY_SPLITS).default('train'))
    .option('--replay-seed <n>', 'seed of the replay sample', (v) => Number(v), 0)
    .option('--adapt-recipe <yaml>', 'recipe of on-device adaptation for the manifest (adapt.recipe): epochs, imgsz, lr0, pseudoConf, holdout, timeBudgetSec, memoryBudgetMb, minGain, maxLoss');
  packageCmd.action(async (o: {
    from: string; name: string; version: string; sign: string; out?: string; valData?: string; valImages?: number; tar: boolean; role: PackageRole; weightsFile?: string;
    replayImages?: number; replayFrom: ReplaySplit; replaySeed: number; adaptRecipe?: string;
  }) => {
    await runPackage({ ...o, logger: consoleLogger(false) });
  });

  const keysGen = new Command('gen')
    .description('generate an Ed25519 signing key pair (<name>.key mode 0600, <name>.pub)')
    .option('--out <dir>', 'folder for the key files', '.')
    .option('--name <name>', 'file name stem', 'kd-edge')
    .option('--force', 'overwrite existing key files');
  keysGen.action(async (o: { out: string; name: string; force?: boolean }) => {
    const pair = generateKeyPair();
    await mkdir(o.out, { recursive: true });
    const privateKeyPath = join(o.out, `${o.name}.key`);
    const publicKeyPath = join(o.out, `${o.name}.pub`);
    await writeKeyPair(pair, { privateKeyPath, publicKeyPath }, { overwrite: o.force === true });
    process.stdout.write(`key ${pair.keyId}: private ${privateKeyPath} (keep it secret), public ${publicKeyPath} (pin it on devices)\n`);
  });
  const keysCmd = new Command('keys').description('package signing keys').addCommand(keysGen);

  const verifyCmd = new Command('verify')
    .description('verify a model package (folder or .tar): signature, hashes, sizes, paths')
    .argument('<pkg>', 'package folder or .tar')
    .requiredOption('--trust <keys>', 'trusted public key file(s), comma-separated');
  verifyCmd.action(async (pkg: string, o: { trust: string }) => {
    const keys = await Promise.all(o.trust.split(',').filter(Boolean).map((k) => loadPublicKey(k)));
    // Checks any role and says which; what serves a package verifies with the default roles (model only).
    const v = await verifyPackage(pkg, { trustedKeys: keys, roles: PACKAGE_ROLES });
    const role = manifestRole(v.manifest) === 'model' ? '' : ` (${manifestRole(v.manifest)}: never served)`;
    process.stdout.write(`OK ${v.manifest.name} ${v.manifest.version}${role}: ${v.files.length} files verified, signed by key ${v.keyId}\n`);
  });

  const convertCmd = new Command('convert')
    .description('convert weights (an ultralytics YOLOv5 .pt checkpoint, a YOLOv5 ONNX export, or .kdw) to a kd-trainer .kdw')
    .argument('<weights>', '.pt, .onnx or .kdw file')
    .requiredOption('--out <file>', 'the .kdw to write');
  convertCmd.action(async (file: string, o: { out: string }) => {
    const r = await convertWeights(file, o.out);
    for (const note of r.notes) process.stdout.write(`${note}\n`);
    process.stdout.write(`${file} (${r.kind}) → ${r.out}: ${r.tensors} tensors\n`);
  });

  const inspectCmd = new Command('inspect')
    .description('print an ONNX model\'s inputs, outputs, opsets, op histogram and parameter count')
    .argument('<onnx>', 'ONNX file')
    .option('--json', 'print JSON');
  inspectCmd.action(async (file: string, o: { json?: boolean }) => {
    const i = inspectModel(await readOnnxFile(file));
    process.stdout.write(o.json ? `${JSON.stringify(i)}\n` : `${formatInspection(i)}\n`);
  });

  program.addCommand(trainCmd).addCommand(distillCmd).addCommand(adaptCommand()).addCommand(valCmd).addCommand(predictCommand()).addCommand(exportCmd).addCommand(packageCmd).addCommand(keysCmd)
    .addCommand(verifyCmd).addCommand(inspectCmd).addCommand(convertCmd).addCommand(dataCmd).addCommand(classifyCommand());
  return program;
}

const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory, expected a file',
  ENOTDIR: 'a part of the path is not a directory', EEXIST: 'already exists',
};

function isFileError(e: unknown): e is NodeJS.ErrnoException & { code: string; path: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).path === 'string';
}

/** Runs the CLI; known errors (ours, and a missing or unreadable file) print one line with their code instead of a stack. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof KdEdgeError) {
      process.stderr.write(`kd-trainer: ${e.message} [${e.code}]\n`);
      process.exitCode = 2;
    } else if (isFileError(e)) {
      // A file named on the command line that is missing or unreadable: the path and the code, no stack.
      process.stderr.write(`kd-trainer: ${e.path}: ${FILE_ERRORS[e.code] ?? e.message} [${e.code}]\n`);
      process.exitCode = 2;
    } else {
      throw e;
    }
  }
}
