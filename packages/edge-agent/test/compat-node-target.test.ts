import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bundle,
  checkEngines,
  NODE_TARGET,
  satisfies,
  scanBundle,
} from '../scripts/check-node-target.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const script = resolve(here, '..', 'scripts', 'check-node-target.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'kd-compat-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('check-node-target on the agent', () => {
  it('passes: the agent bundles for node20.9, uses nothing newer, and its dependencies admit 20.9', () => {
    const run = spawnSync(process.execPath, [script, '--json'], { encoding: 'utf8' });
    const report = JSON.parse(run.stdout) as { ok: boolean; target: string; esbuildErrors: string[]; findings: unknown[] };
    expect(report.target).toBe(NODE_TARGET);
    expect(report.esbuildErrors).toEqual([]);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(run.status).toBe(0);
  });
});

describe('scanBundle', () => {
  it('flags Promise.withResolvers and names the source file from esbuild markers', () => {
    const code = ['// packages/edge-agent/src/x.ts', 'const { promise, resolve } = Promise.withResolvers();'].join('\n');
    const findings = scanBundle(code);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ id: 'Promise.withResolvers', since: '22.0.0', file: 'packages/edge-agent/src/x.ts', line: 2 });
  });

  it('flags 20.x backports newer than 20.9 that @types/node 20.19 lets through', () => {
    const code = [
      'import { styleText as paint } from "node:util";',
      'import * as crypto from "node:crypto";',
      'const d = import.meta.dirname;',
      'const h = crypto.hash("sha256", "x");',
      'const u = URL.parse("http://x");',
    ].join('\n');
    const ids = scanBundle(code).map((f) => f.id);
    expect(ids).toEqual(expect.arrayContaining(['util.styleText', 'crypto.hash', 'import.meta.dirname / filename', 'URL.parse']));
  });

  it('flags Set methods, groupBy, fs.glob and iterator helpers', () => {
    const code = [
      'import { glob } from "fs/promises";',
      'const u = a.union(b);',
      'const g = Object.groupBy(xs, (x) => x.k);',
      'const firstTwo = m.values().take(2).toArray();',
    ].join('\n');
    const ids = scanBundle(code).map((f) => f.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'fs/promises.glob',
        'Set methods (union, intersection, ...)',
        'Object.groupBy',
        'iterator helpers on keys()/values()/entries()',
      ]),
    );
  });

  it('leaves code that 20.9 runs alone, and rules at or below the target are not applied', () => {
    const ok = [
      'import { statfs } from "node:fs/promises";',
      'import * as util from "node:util";',
      'const sorted = xs.toSorted((a, b) => a - b);',
      'const last = xs.findLast((x) => x > 1);',
      'const s = AbortSignal.any([a, b]);',
      'const ok = URL.canParse(u);',
      'const dir = fileURLToPath(new URL(".", import.meta.url));',
      'util.format("%s", x);',
      'import { z } from "zod";',
      'const schema = z.union([z.literal(5), z.literal(4)]);',
    ].join('\n');
    expect(scanBundle(ok)).toEqual([]);
    expect(scanBundle('const d = import.meta.dirname;', { target: '20.11.0' })).toEqual([]);
  });
});

describe('bundle', () => {
  it('reports syntax esbuild cannot lower for the target instead of passing it through', async () => {
    const result = await bundle([], { target: '12.0.0', stdin: 'export const x = await Promise.resolve(1);' });
    expect(result.outputs).toEqual([]);
    expect(result.errors.join('\n')).toMatch(/[Tt]op-level await/);
  });

  it('inlines @kd-edge/core from source and keeps other packages external', async () => {
    const result = await bundle([], {
      stdin: 'import { KdEdgeError } from "@kd-edge/core"; import mqtt from "mqtt"; export { KdEdgeError, mqtt };',
    });
    expect(result.errors).toEqual([]);
    const text = result.outputs.map((o) => o.text).join('\n');
    expect(text).toContain('// packages/core/src/errors.ts');
    expect(text).toMatch(/from "mqtt"/);
  });
});

describe('satisfies', () => {
  it.each([
    ['>=20.9.0', true],
    ['>=20.9', true],
    ['>= 18', true],
    ['>=20.10.0', false],
    ['^18.17.0 || >=20.5.0', true],
    ['^20.11.0 || >=21.2.0', false],
    ['16 || 18 || >=20', true],
    ['^20', true],
    ['~20.9.1', false],
    ['20.x', true],
    ['>=14 <20', false],
    ['18 - 20.8', false],
    ['18 - 20', true],
    ['>=22.12.0', false],
    ['*', true],
  ])('20.9.0 against %s is %s', (range, expected) => {
    expect(satisfies('20.9.0', range)).toBe(expected);
  });
});

describe('checkEngines', () => {
  it('walks the lock from the workspace, follows links, and reports engines that exclude the target', () => {
    const lock = {
      packages: {
        '': { name: 'root' },
        'packages/agent': { name: 'agent', dependencies: { lib: '^1', '@kd/core': '*' }, devDependencies: { devonly: '*' } },
        'node_modules/@kd/core': { resolved: 'packages/core', link: true },
        'packages/core': { name: '@kd/core', dependencies: { old: '*' }, engines: { node: '>=20.9' } },
        'node_modules/lib': { version: '1.0.0', optionalDependencies: { 'lib-arm64': '1' }, engines: { node: '>=18' } },
        'node_modules/lib-arm64': { version: '1.0.0', engines: { node: '>=22.12.0' } },
        'node_modules/old': { version: '2.0.0', dependencies: { dep: '*' } },
        'node_modules/old/node_modules/dep': { version: '3.0.0', engines: { node: '^20.11.0 || >=21' } },
        'node_modules/devonly': { version: '1.0.0', engines: { node: '>=99' } },
      },
    };
    const lockPath = join(scratch, 'package-lock.json');
    writeFileSync(lockPath, JSON.stringify(lock));
    const result = checkEngines({ lockPath, workspace: 'packages/agent' });
    expect(result.checked).toBe(5);
    expect(result.problems.map((p) => p.path).sort()).toEqual(['node_modules/lib-arm64', 'node_modules/old/node_modules/dep']);
  });
});
