import { Command, Option } from 'commander';
import { readYamlMapping, type OptionsSchema } from '../config.js';

/** Adds one commander option per schema field (`batch_size` → `--batch-size`), defaults left to the schema. */
export function addSchemaOptions(cmd: Command, schema: OptionsSchema): Command {
  for (const [key, spec] of Object.entries(schema)) {
    const flag = `--${key.replace(/_/g, '-')}`;
    const def = spec.default !== undefined && spec.default !== '' ? ` (default: ${String(spec.default)})` : '';
    if (spec.type === 'boolean') {
      cmd.addOption(new Option(flag, `${spec.help}${def}`));
      cmd.addOption(new Option(`--no-${key.replace(/_/g, '-')}`).hideHelp());
    } else {
      const opt = new Option(`${flag} <${spec.type === 'enum' ? 'name' : spec.type === 'string' ? 'value' : 'n'}>`, `${spec.help}${def}`);
      if (spec.type === 'enum') opt.choices(spec.choices as string[]);
      cmd.addOption(opt);
    }
  }
  return cmd;
}

/** Commander's camelCase option object back to schema keys, dropping the ones not given. */
export function givenOptions(opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || k === 'cfg') continue;
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  }
  return out;
}

/** The layers a command's options resolve from: `--cfg FILE` (if any), then the flags given over it. */
export async function optionLayers(opts: Record<string, unknown>): Promise<{ file: Record<string, unknown>; flags: Record<string, unknown> }> {
  const file = typeof opts.cfg === 'string' ? await readYamlMapping(opts.cfg, 'cfg') : {};
  return { file, flags: givenOptions(opts) };
}
