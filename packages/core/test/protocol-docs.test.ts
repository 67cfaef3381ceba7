import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { chunkHeaderSchema } from '../src/protocol/chunk-frame.js';
import { verifyCommandSignature } from '../src/protocol/command-signature.js';
import { parseMessage } from '../src/protocol/parse.js';
import type { MessageKind } from '../src/protocol/topics.js';
import { DOCS_KEY, docsExampleBlocks, protocolExamples } from './protocol-fixtures.js';

const doc = readFileSync(fileURLToPath(new URL('../../../docs/protocol.md', import.meta.url)), 'utf8');

interface Block {
  name: string | undefined;
  json: unknown;
}

// Every ```json block, with the name of the `<!-- example: name -->` marker right above it.
const blocks: Block[] = [...doc.matchAll(/(?:<!-- example: (\S+) -->\n)?```json\n([\s\S]*?)\n```/g)].map((m) => ({
  name: m[1],
  json: JSON.parse(m[2] ?? '') as unknown,
}));

function kindOf(json: Record<string, unknown>): MessageKind {
  if ('manifestVersion' in json) return 'manifest';
  return json.type as MessageKind;
}

describe('docs/protocol.md examples', () => {
  it('has a block for every message kind and every command', () => {
    const kinds = new Set(blocks.map((b) => ('chunkSha256' in (b.json as object) ? 'chunk-header' : kindOf(b.json as Record<string, unknown>))));
    expect([...kinds].sort()).toEqual(['adapt', 'bench', 'chunk-header', 'chunk-request', 'cmd', 'detections', 'event', 'manifest', 'status']);
    const commands = blocks.map((b) => (b.json as { command?: string }).command).filter((c) => c !== undefined);
    expect(new Set(commands)).toEqual(new Set(['ping', 'deploy', 'rollback', 'benchmark', 'adapt', 'adapt-cancel', 'adapt-upload']));
  });

  it.each(blocks.map((b, i) => [b.name ?? `block ${i}`, b] as const))('%s parses with parseMessage', (_name, block) => {
    const json = block.json as Record<string, unknown>;
    if ('chunkSha256' in json) {
      expect(chunkHeaderSchema.safeParse(json).success).toBe(true);
      return;
    }
    const parsed = parseMessage(kindOf(json), JSON.stringify(json));
    expect(parsed).toEqual(json);
    if (json.signature !== undefined && json.type === 'cmd') expect(verifyCommandSignature(json, [DOCS_KEY.publicKey])).toMatch(/^[0-9a-f]{16}$/);
  });

  // When an example changes, print the new blocks with docsExampleBlocks() (see protocol-fixtures.ts) and paste them.
  it('shows exactly the examples the code generates', () => {
    const examples = protocolExamples() as Record<string, unknown>;
    const named = blocks.filter((b) => b.name !== undefined && b.name !== 'chunk-header');
    expect(named.map((b) => b.name).sort()).toEqual(Object.keys(examples).sort());
    for (const block of named) expect(block.json, `example ${block.name ?? ''}`).toEqual(examples[block.name ?? '']);
  });

  it('holds the generated blocks verbatim', () => {
    for (const block of docsExampleBlocks()) expect(doc).toContain(block);
  });
});
