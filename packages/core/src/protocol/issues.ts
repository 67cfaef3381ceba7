import type { z } from 'zod';
import { ProtocolError, type ProtocolIssue } from './protocol-error.js';
import { showValue } from '../util/show-value.js';

/** A JSON path as text: `['detections', 0, 'box']` → `detections[0].box`; `(root)` when empty. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out === '' ? '(root)' : out;
}

function bound(issue: { origin?: string; inclusive?: boolean }, limit: unknown, lower: boolean): string {
  const origin = issue.origin ?? 'value';
  const plural = limit === 1 ? '' : 's';
  if (origin === 'string') return `expected ${lower ? 'at least' : 'at most'} ${String(limit)} character${plural}`;
  if (origin === 'array' || origin === 'set') return `expected ${lower ? 'at least' : 'at most'} ${String(limit)} item${plural}`;
  const op = lower ? (issue.inclusive === false ? '>' : '>=') : issue.inclusive === false ? '<' : '<=';
  return `expected a ${origin} ${op} ${String(limit)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Zod's own messages ("Invalid input: expected string, received number") are rewritten into the
// protocol's "expected …, got …" form, which names the value that was received.
function describe(issue: z.core.$ZodIssue): string {
  const got = 'input' in issue ? `, got ${showValue(issue.input)}` : '';
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected === 'int' ? 'an integer' : issue.expected}${got}`;
    case 'too_small':
      return `${bound(issue, issue.minimum, true)}${got}`;
    case 'too_big':
      return `${bound(issue, issue.maximum, false)}${got}`;
    case 'invalid_value':
      return `expected ${issue.values.map((v) => showValue(v)).join(' | ')}${got}`;
    case 'invalid_union': {
      // A discriminated union reports the whole object; the discriminator's value is what matters.
      const { options, discriminator } = issue as { options?: unknown; discriminator?: unknown };
      if (Array.isArray(options) && typeof discriminator === 'string') {
        const value = isObject(issue.input) ? issue.input[discriminator] : issue.input;
        return `expected ${options.map((v) => showValue(v)).join(' | ')}, got ${showValue(value)}`;
      }
      return issue.message;
    }
    case 'invalid_format':
      return `${issue.message}${got}`;
    case 'custom':
      // Refinements on a whole object would echo the object; messages from parseManifest already say what they got.
      return issue.message.includes(', got ') || isObject(issue.input) ? issue.message : `${issue.message}${got}`;
    default:
      return issue.message;
  }
}

/** The protocol's issues for a zod error: one per problem, each naming its JSON path. */
export function protocolIssues(error: z.ZodError): ProtocolIssue[] {
  return error.issues.map((issue) => ({ field: formatPath(issue.path), message: describe(issue) }));
}

/**
 * A PROTOCOL_SCHEMA ProtocolError for a zod error; the message names `root` (the message kind or
 * command, e.g. `deploy`) and the first field at fault, e.g. `deploy.package.sha256: expected 64 …`.
 */
export function schemaError(root: string, error: z.ZodError): ProtocolError {
  const issues = protocolIssues(error);
  const first = issues[0] ?? { field: '(root)', message: 'invalid message' };
  const where = first.field === '(root)' ? root : first.field.startsWith('[') ? `${root}${first.field}` : `${root}.${first.field}`;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  return new ProtocolError('PROTOCOL_SCHEMA', `${where}: ${first.message}${more}`, { field: first.field, issues, cause: error });
}
