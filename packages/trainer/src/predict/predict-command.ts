import { Command, Option } from 'commander';
import { resolveOptions } from '../config.js';
import { addSchemaOptions, optionLayers } from '../cli/schema-options.js';
import { consoleLogger } from '../util/logger.js';
import { PREDICT_SCHEMA } from './predict-schema.js';
import { runPredict } from './run-predict.js';

// A list given as a YAML sequence or as the variadic flag: one string for the schema.
const joinList = (v: unknown): unknown => (Array.isArray(v) ? v.join(' ') : v);

/**
 * The `kd-trainer predict` command (detect.py's flags): every {@link PREDICT_SCHEMA} option, with
 * `--classes` taking several values.
 */
export function predictCommand(): Command {
  const cmd = new Command('predict')
    .description('detect objects in images, folders, globs or videos (as ultralytics detect.py) and save annotated copies')
    .option('--cfg <file>', 'YAML file with any of these options');
  const { classes, ...rest } = PREDICT_SCHEMA;
  addSchemaOptions(cmd, rest);
  cmd.addOption(new Option('--classes <n...>', classes.help));
  cmd.action(async (opts: Record<string, unknown>) => {
    const { file, flags } = await optionLayers(opts);
    for (const layer of [file, flags]) if ('classes' in layer) layer.classes = joinList(layer.classes);
    const { config } = resolveOptions(PREDICT_SCHEMA, [file, flags]);
    await runPredict(config, { logger: consoleLogger(false) });
  });
  return cmd;
}
