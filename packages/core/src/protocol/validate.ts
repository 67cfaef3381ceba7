import type { z } from 'zod';
import { schemaError } from './issues.js';

/**
 * Parse `value` with `schema` or throw a PROTOCOL_SCHEMA ProtocolError whose message starts with
 * `root` (the message kind or command) and the JSON path at fault.
 */
export function validateWith<S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (!result.success) throw schemaError(root, result.error);
  return result.data;
}
