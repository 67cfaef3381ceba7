import { Command } from 'commander';
import { KdEdgeError } from '@kd-edge/core';
import { HYP_KEYS, readYamlMapping, resolveHyp, resolveOptions, type OptionsSchema, type Resolved, type TRAIN_SCHEMA } from '../config.js';
import type { Hyp } from '../train/hyp.js';
import { consoleLogger, type Logger } from '../util/logger.js';
import { resumeLayer } from './resume-layer.js';
import { addSchemaOptions, optionLayers } from './schema-options.js';

/** What a training command's runner is given besides its options: the console logger and the Ctrl-C signal. */
export interface TrainingCommandRun {
  logger: Logger;
  signal: AbortSignal;
}

/**
 * A command that trains (`train`, `distill`): options from `--cfg` and flags with hyperparameters
 * passed through, and Ctrl-C stopping the run after the current step with `last.kdw` saved (a second
 * Ctrl-C quits at once); an interrupted run exits with 130, and `--resume` continues it.
 */
export function trainingCommand<S extends OptionsSchema & Pick<typeof TRAIN_SCHEMA, 'hyp'>>(
  name: string, description: string, schema: S,
  runner: (config: Resolved<S>, hyp: Hyp, run: TrainingCommandRun) => Promise<{ interrupted: boolean }>,
): Command {
  const cmd = new Command(name)
    .description(description)
    .option('--cfg <file>', 'YAML file with any of these options (and hyperparameters); flags override it')
    .option('--verbose', 'debug output');
  return addSchemaOptions(cmd, schema).action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    delete flags.verbose;
    const resumed = await resumeLayer(schema, [file, flags]);
    if (resumed.resume !== undefined) flags.resume = resumed.resume;
    const { config, extra } = resolveOptions(schema, [resumed, file, flags], HYP_KEYS);
    const hypFile = config.hyp ? await readYamlMapping(String(config.hyp), 'hyp') : {};
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
      const r = await runner(config, hyp, { logger, signal: ac.signal });
      if (r.interrupted) process.exitCode = 130;
    } catch (e) {
      // Stopped between two runs (distill --compare): nothing half-done to report beyond the message.
      if (!(e instanceof KdEdgeError && e.code === 'TRAIN_INTERRUPTED')) throw e;
      logger.info(e.message);
      process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSigint);
    }
  });
}
