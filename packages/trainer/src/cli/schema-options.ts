import { Command, Option } from 'commander';
import { FLAG_ALIASES, readYamlMapping, type OptionsSchema } from '../config.js';

/** Adds one commander option per schema field (`batch_size` → `--batch-size`), defaults left to the schema. */
export function addSchemaOptions(cmd: Command, schema: OptionsSchema): Command {
  for (const [key, spec] of Object.entries(schema)) {
    const flag = `--${key.replace(/_/g, '-')}`;
    const def = spec.default !== undefined && spec.default !== '' ? ` (default: ${String(spec.default)})` : '';
    if (spec.type === 'boolean') {
      cmd.addOption(new Option(flag, `${spec.help}${def}`));
      cmd.addOption(new Option(`--no-${key.replace(/_/g, '-')}`).hideHelp());
    } else {
      const arg = spec.type === 'enum' ? 'name' : spec.type === 'string' ? 'value' : 'n';
      // A flag given bare (`--resume`) takes the spec's bare value.
      const bare = (spec.type === 'string' || spec.type === 'enum') && spec.bare !== undefined;
      const opt = new Option(`${flag} ${bare ? `[${arg}]` : `<${arg}>`}`, `${spec.help}${def}`);
      if (spec.type === 'enum') opt.choices(spec.choices as string[]);
      if (bare) opt.preset((spec as { bare: string }).bare);
      cmd.addOption(opt);
    }
  }
  for (const [alias, key] of Object.entries(FLAG_ALIASES)) {
    if (!(key in schema) || alias in schema) continue;
    cmd.addOption(new Option(`--${alias.replace(/_/g, '-')} <n>`, `same as --${key.replace(/_/g, '-')}`).hideHelp());
  }
  return cmd;
}

/** Commander's camelCase option object back to schema keys, dropping the ones not given. */
export function givenOptions(opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || k === 'cfg') continue;
    const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    out[FLAG_ALIASES[key] ?? key] = v;
  }
  return out;
}

/** The layers a command's options resolve from: `--cfg FILE` (if any), then the flags given over it. */
export async function optionLayers(opts: Record<string, unknown>): Promise<{ file: Record<string, unknown>; flags: Record<string, unknown> }> {
  const file = typeof opts.cfg === 'string' ? await readYamlMapping(opts.cfg, 'cfg') : {};
  return { file, flags: givenOptions(opts) };
}
