#!/usr/bin/env node
// Checks that kd-agent uses nothing newer than the Node.js it ships with on Jetson (20.9, see docs/agent-jetson.md):
//  1. bundles the agent's entry points (and @kd-edge/core from source) with esbuild for target node20.9, failing on
//     any syntax esbuild cannot lower for that target;
//  2. scans the bundle for built-ins and Node APIs newer than 20.9 (TypeScript does not catch these: lib ES2023 leaves
//     some out, but @types/node 20.19 declares the 20.10-20.19 backports, and `any` hides the rest);
//  3. checks that every runtime dependency's engines.node (from package-lock.json, so the linux-arm64 variants count
//     too) admits 20.9.
// Usage: node packages/edge-agent/scripts/check-node-target.mjs [--target 20.9.0] [--json]
// This file must itself run on Node 20.9: no import.meta.dirname here.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The Node.js version the agent must run on: the Jetson image's Node 20 floor (sharp 0.35 needs >= 20.9). */
export const NODE_TARGET = '20.9.0';

const HERE = dirname(fileURLToPath(import.meta.url));
const AGENT_DIR = resolve(HERE, '..');
const REPO_ROOT = resolve(AGENT_DIR, '..', '..');

// Each rule: what it finds, the first Node.js that has it, and where that version comes from.
// "V8 11.3" rows were also checked empty on Node 20.20.2 (V8 11.3.244), and every 20.x release ships V8 11.3.
// "types" rows come from the @since tags in @types/node 20.19 (the backports into 20.x).
// `member: true` rules match a method name on any receiver; a receiver imported from a package (zod's `z.union`)
// is that package's API, not the built-in, and is skipped.
/** @type {readonly {id: string, since: string, source: string, pattern: RegExp, member?: boolean}[]} */
export const GLOBAL_RULES = [
  { id: 'Promise.withResolvers', since: '22.0.0', source: 'ES2024; absent in V8 11.3', pattern: /\bPromise\s*\.\s*withResolvers\b/ },
  { id: 'Promise.try', since: '22.10.0', source: 'ES2025; absent in V8 11.3', pattern: /\bPromise\s*\.\s*try\b/ },
  { id: 'Array.fromAsync', since: '22.0.0', source: 'ES2024 proposal; absent in V8 11.3', pattern: /\bArray\s*\.\s*fromAsync\b/ },
  { id: 'Object.groupBy', since: '21.0.0', source: 'ES2024; absent in V8 11.3', pattern: /\bObject\s*\.\s*groupBy\b/ },
  { id: 'Map.groupBy', since: '21.0.0', source: 'ES2024; absent in V8 11.3', pattern: /\bMap\s*\.\s*groupBy\b/ },
  {
    id: 'Set methods (union, intersection, ...)',
    since: '22.0.0',
    source: 'ES2025; absent in V8 11.3',
    pattern: /\.\s*(?:union|intersection|symmetricDifference|isSubsetOf|isSupersetOf|isDisjointFrom)\s*\(/g,
    member: true,
  },
  { id: 'Iterator global / Iterator.from', since: '22.0.0', source: 'ES2025 iterator helpers; absent in V8 11.3', pattern: /\bIterator\s*\.\s*from\b|\bnew\s+Iterator\b|\bIterator\s*\.\s*prototype\b/ },
  {
    id: 'iterator helpers on keys()/values()/entries()',
    since: '22.0.0',
    source: 'ES2025 iterator helpers; absent in V8 11.3',
    pattern: /\.\s*(?:keys|values|entries)\s*\(\s*\)\s*\.\s*(?:map|filter|take|drop|flatMap|reduce|toArray|forEach|some|every|find)\s*\(/,
  },
  { id: 'ArrayBuffer.prototype.transfer', since: '21.0.0', source: 'ES2024; absent in V8 11.3', pattern: /\.\s*transfer(?:ToFixedLength)?\s*\(/g, member: true },
  { id: 'RegExp.escape', since: '24.0.0', source: 'ES2025; absent in V8 11.3', pattern: /\bRegExp\s*\.\s*escape\b/ },
  { id: 'Float16Array / Math.f16round', since: '24.0.0', source: 'ES2025; absent in V8 11.3', pattern: /\bFloat16Array\b|\bMath\s*\.\s*f16round\b/ },
  { id: 'Error.isError', since: '24.0.0', source: 'ES2026; absent in V8 11.3', pattern: /\bError\s*\.\s*isError\b/ },
  { id: 'Uint8Array base64/hex', since: '25.0.0', source: 'ES2026; absent in V8 11.3', pattern: /\bUint8Array\s*\.\s*from(?:Base64|Hex)\b|\.\s*(?:toBase64|toHex|setFromBase64|setFromHex)\s*\(/ },
  { id: 'DisposableStack / AsyncDisposableStack', since: '24.0.0', source: 'explicit resource management; absent in V8 11.3', pattern: /\b(?:Async)?DisposableStack\b/ },
  { id: 'Math.sumPrecise', since: '24.0.0', source: 'ES2026; absent in V8 11.3', pattern: /\bMath\s*\.\s*sumPrecise\b/ },
  { id: 'JSON.rawJSON / JSON.isRawJSON', since: '21.0.0', source: 'absent in V8 11.3', pattern: /\bJSON\s*\.\s*(?:rawJSON|isRawJSON)\b/ },
  { id: 'RegExp modifiers (?i:...)', since: '23.0.0', source: 'ES2025; V8 11.3 rejects them', pattern: /\(\?[ims]*-?[ims]+:/ },
  { id: 'navigator global', since: '21.0.0', source: 'Node.js 21 changelog', pattern: /(?<![.\w$])navigator\s*\.\s*\w/ },
  { id: 'WebSocket global', since: '22.0.0', source: 'Node.js 22 changelog (flag-free)', pattern: /\bnew\s+WebSocket\s*\(/ },
  { id: 'import.meta.dirname / filename', since: '20.11.0', source: 'Node.js 20.11.0 changelog (backport of 21.2)', pattern: /\bimport\.meta\.(?:dirname|filename)\b/ },
  { id: 'process.getBuiltinModule', since: '20.16.0', source: 'types', pattern: /\bprocess\s*\.\s*getBuiltinModule\b/ },
  { id: 'process.loadEnvFile', since: '20.12.0', source: 'types', pattern: /\bprocess\s*\.\s*loadEnvFile\b/ },
  { id: 'process.availableMemory', since: '20.13.0', source: 'types', pattern: /\bprocess\s*\.\s*availableMemory\b/ },
  { id: 'process.features.require_module', since: '20.19.0', source: 'types', pattern: /\bprocess\s*\.\s*features\s*\.\s*require_module\b/ },
  { id: 'URL.parse', since: '20.18.0', source: 'types', pattern: /\bURL\s*\.\s*parse\s*\(/ },
  { id: 'fs.Dirent#parentPath', since: '20.12.0', source: 'types (20.9 has only the deprecated dirent.path)', pattern: /\.\s*parentPath\b/ },
  { id: 'Blob#bytes', since: '20.16.0', source: 'types', pattern: /\.\s*bytes\s*\(\s*\)/g, member: true },
];

// Named exports of built-in modules newer than the target, found through the bundle's import bindings.
/** @type {readonly {module: string, name: string, since: string, source: string}[]} */
export const BUILTIN_RULES = [
  { module: 'fs', name: 'glob', since: '22.0.0', source: 'Node.js 22 changelog' },
  { module: 'fs', name: 'globSync', since: '22.0.0', source: 'Node.js 22 changelog' },
  { module: 'fs/promises', name: 'glob', since: '22.0.0', source: 'Node.js 22 changelog' },
  { module: 'util', name: 'styleText', since: '20.12.0', source: 'types' },
  { module: 'util', name: 'parseEnv', since: '20.12.0', source: 'types' },
  { module: 'util', name: 'getCallSites', since: '22.9.0', source: 'Node.js 22.9 changelog' },
  { module: 'crypto', name: 'hash', since: '20.12.0', source: 'types' },
  { module: 'zlib', name: 'crc32', since: '20.15.0', source: 'types' },
  { module: 'path', name: 'matchesGlob', since: '20.17.0', source: 'types' },
  { module: 'stream', name: 'duplexPair', since: '20.17.0', source: 'types' },
  { module: 'module', name: 'findPackageJSON', since: '22.14.0', source: 'Node.js 22.14 changelog' },
  { module: 'module', name: 'enableCompileCache', since: '22.1.0', source: 'Node.js 22.1 changelog' },
  { module: 'v8', name: 'queryObjects', since: '20.13.0', source: 'types' },
  { module: 'sqlite', name: '*', since: '22.5.0', source: 'Node.js 22.5 changelog' },
];

/**
 * Compares two x.y.z versions; negative when a < b.
 * @param {string} a
 * @param {string} b
 */
export function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Whether `version` (x.y.z) satisfies an npm semver range as used in engines fields
 * (`||`, comparator sets, `^`, `~`, x-ranges, hyphen ranges). Prerelease tags are ignored.
 * @param {string} version
 * @param {string} range
 * @returns {boolean}
 */
export function satisfies(version, range) {
  const alternatives = range.split('||').map((s) => s.trim());
  return alternatives.some((alt) => {
    if (alt === '' || alt === '*' || alt === 'x' || alt === 'latest') return true;
    const hyphen = alt.match(/^(\S+)\s+-\s+(\S+)$/);
    if (hyphen) {
      return compareVersions(version, fill(hyphen[1]).low) >= 0 && upperOk(version, hyphen[2]);
    }
    // ">= 18" is legal in engines fields: glue operators to their versions first.
    const comparators = alt.replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/);
    return comparators.every((c) => comparatorOk(version, c));
  });
}

/** @param {string} v */
function fill(v) {
  const parts = v.replace(/^v/, '').split('-')[0].split('.');
  const nums = [];
  for (const p of parts.slice(0, 3)) {
    if (p === 'x' || p === 'X' || p === '*') break;
    nums.push(Number(p));
  }
  const fixed = nums.length;
  const low = [nums[0] ?? 0, nums[1] ?? 0, nums[2] ?? 0].join('.');
  return { nums, fixed, low };
}

/** @param {string} version @param {string} v */
function upperOk(version, v) {
  const { nums, fixed } = fill(v);
  if (fixed === 3) return compareVersions(version, nums.join('.')) <= 0;
  if (fixed === 0) return true;
  const next = [...nums];
  next[fixed - 1] += 1;
  return compareVersions(version, [next[0], next[1] ?? 0, next[2] ?? 0].join('.')) < 0;
}

/** @param {string} version @param {string} c */
function comparatorOk(version, c) {
  const m = c.match(/^(>=|<=|>|<|=|\^|~)?(.*)$/);
  if (!m) return false;
  const op = m[1] ?? '';
  const { nums, fixed, low } = fill(m[2]);
  if (fixed === 0) return op === '' || op === '>=' || op === '<=' || op === '=';
  const cmp = compareVersions(version, low);
  switch (op) {
    case '>=':
      return cmp >= 0;
    case '>':
      return fixed === 3 ? cmp > 0 : !upperOk(version, m[2]);
    case '<':
      return cmp < 0;
    case '<=':
      return upperOk(version, m[2]);
    case '^': {
      if (cmp < 0) return false;
      // The first non-zero part is the one that may not change.
      const lockAt = nums[0] !== 0 || fixed === 1 ? 1 : nums[1] !== 0 || fixed === 2 ? 2 : 3;
      return upperOk(version, nums.slice(0, lockAt).join('.'));
    }
    case '~':
      return cmp >= 0 && upperOk(version, nums.slice(0, Math.min(fixed, 2)).join('.'));
    default:
      return fixed === 3 ? cmp === 0 : cmp >= 0 && upperOk(version, m[2]);
  }
}

/**
 * One finding: a rule that matched, where, and why it is a problem for the target.
 * @typedef {{ id: string, since: string, source: string, file: string, line: number, excerpt: string }} Finding
 */

/**
 * Scans bundled JavaScript (esbuild ESM output, unminified) for APIs newer than `target`.
 * esbuild's `// path/to/file.ts` markers name the source file of each finding.
 * @param {string} code
 * @param {{ target?: string, fileName?: string }} [options]
 * @returns {Finding[]}
 */
export function scanBundle(code, options = {}) {
  const target = options.target ?? NODE_TARGET;
  /** @type {Finding[]} */
  const findings = [];
  const lines = code.split('\n');
  let file = options.fileName ?? '<bundle>';
  const fileAt = lines.map((line) => {
    const marker = line.match(/^\/\/ ((?:\.\.\/)*[\w@.-]+(?:\/[\w@.-]+)*\.[cm]?[jt]sx?)$/);
    if (marker) file = marker[1];
    return file;
  });
  const push = (/** @type {{id:string,since:string,source:string}} */ rule, /** @type {number} */ i) => {
    findings.push({ id: rule.id, since: rule.since, source: rule.source, file: fileAt[i], line: i + 1, excerpt: lines[i].trim().slice(0, 160) });
  };

  // Names bound by imports of packages (not built-ins): `import { z } from "zod"`, `import * as z from "zod"`.
  const imported = new Set();
  for (const m of code.matchAll(/^\s*import\s+([^;]*?)\s+from\s*["']([^"']+)["']/gm)) {
    if (m[2].startsWith('node:') || m[2].startsWith('.')) continue;
    for (const name of m[1].replace(/[{}]/g, ',').split(',')) {
      const local = name.trim().split(/\s+as\s+/).pop()?.replace(/^\*\s*/, '').trim();
      if (local) imported.add(local);
    }
  }
  const globals = GLOBAL_RULES.filter((r) => compareVersions(r.since, target) > 0);
  lines.forEach((line, i) => {
    if (line.startsWith('//')) return;
    for (const rule of globals) {
      if (!rule.member) {
        if (rule.pattern.test(line)) push(rule, i);
        continue;
      }
      for (const m of line.matchAll(rule.pattern)) {
        const receiver = line.slice(0, m.index).match(/([\w$]+)\s*$/)?.[1];
        if (receiver === undefined || !imported.has(receiver)) {
          push(rule, i);
          break;
        }
      }
    }
  });

  // Bindings of built-in modules: `import { a as b } from "node:x"`, `import * as ns from "x"`, `import d from "x"`.
  const builtins = BUILTIN_RULES.filter((r) => compareVersions(r.since, target) > 0);
  const importRe = /^\s*import\s+(?:(\w+|\*\s+as\s+\w+)\s*,?\s*)?(?:\{([^}]*)\})?\s*from\s*["'](?:node:)?([\w/]+)["']/;
  /** @type {{ ns: string, module: string }[]} */
  const namespaces = [];
  lines.forEach((line, i) => {
    const m = line.match(importRe);
    if (!m) return;
    const module = m[3];
    for (const rule of builtins.filter((r) => r.module === module)) {
      if (rule.name === '*') push({ ...rule, id: `node:${module}` }, i);
    }
    if (m[1]) namespaces.push({ ns: m[1].replace(/^\*\s+as\s+/, ''), module });
    for (const spec of (m[2] ?? '').split(',')) {
      const imported = spec.trim().split(/\s+as\s+/)[0];
      const rule = builtins.find((r) => r.module === module && r.name === imported);
      if (rule) push({ ...rule, id: `${module}.${imported}` }, i);
    }
  });
  for (const { ns, module } of namespaces) {
    for (const rule of builtins.filter((r) => r.module === module && r.name !== '*')) {
      const re = new RegExp(`\\b${ns}\\s*\\.\\s*${rule.name}\\b`);
      lines.forEach((line, i) => {
        if (re.test(line)) push({ ...rule, id: `${module}.${rule.name}` }, i);
      });
    }
  }
  // esbuild leaves `require("x")` of externals as `__require("x")`; loading an ESM-only package that way needs
  // require(esm), which 20.9 lacks (unflagged in 20.19).
  lines.forEach((line, i) => {
    for (const m of line.matchAll(/\b(?:__require|require)\s*\(\s*["']([^"']+)["']\s*\)/g)) {
      const spec = m[1];
      if (spec.startsWith('.') || spec.startsWith('node:')) continue;
      if (isEsmOnly(spec)) push({ id: `require(esm) of ${spec}`, since: '20.19.0', source: 'Node.js 20.19.0 changelog' }, i);
    }
  });
  return findings;
}

/** Whether a bare package specifier resolves (from the repository root) to a package with no CommonJS entry. */
function isEsmOnly(/** @type {string} */ spec) {
  const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  const pkgPath = join(REPO_ROOT, 'node_modules', name, 'package.json');
  if (!existsSync(pkgPath)) return false;
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  if (pkg.type !== 'module') return false;
  const exportsText = JSON.stringify(pkg.exports ?? {});
  return !/"require"|\.cjs"/.test(exportsText) && !String(pkg.main ?? '').endsWith('.cjs');
}

/**
 * The agent's entry points: src/index.ts and every src/bin/*.ts that exists.
 * @param {string} [agentDir]
 */
export function agentEntryPoints(agentDir = AGENT_DIR) {
  const entries = [join(agentDir, 'src', 'index.ts')];
  const binDir = join(agentDir, 'src', 'bin');
  if (existsSync(binDir)) {
    for (const f of readdirSync(binDir).sort()) if (f.endsWith('.ts') && !f.endsWith('.d.ts')) entries.push(join(binDir, f));
  }
  return entries.filter((e) => existsSync(e));
}

/**
 * Bundles entry points with esbuild for `node<target>`: packages stay external except @kd-edge/* (resolved through the
 * `source` condition, so core's TypeScript is checked too). Resolves with the output files, or with esbuild's errors
 * when some syntax cannot be lowered for the target.
 * @param {string[]} entryPoints
 * @param {{ target?: string, stdin?: string }} [options]
 * @returns {Promise<{ errors: string[], outputs: { path: string, text: string }[] }>}
 */
export async function bundle(entryPoints, options = {}) {
  const esbuild = await import('esbuild');
  const target = `node${(options.target ?? NODE_TARGET).replace(/\.0$/, '')}`;
  /** @type {import('esbuild').Plugin} */
  const externals = {
    name: 'kd-externals',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith('@kd-edge/')) return undefined;
        return { path: args.path, external: true };
      });
    },
  };
  try {
    const result = await esbuild.build({
      ...(options.stdin !== undefined
        ? { stdin: { contents: options.stdin, loader: 'ts', resolveDir: AGENT_DIR, sourcefile: 'stdin.ts' } }
        : { entryPoints }),
      absWorkingDir: REPO_ROOT,
      bundle: true,
      write: false,
      outdir: join(REPO_ROOT, '.kd-node-target-out'),
      format: 'esm',
      platform: 'node',
      target,
      conditions: ['source'],
      plugins: [externals],
      logLevel: 'silent',
      legalComments: 'none',
    });
    return { errors: [], outputs: result.outputFiles.map((f) => ({ path: relative(REPO_ROOT, f.path), text: f.text })) };
  } catch (err) {
    const errors = /** @type {{ errors?: { text: string, location?: { file: string, line: number } | null }[] }} */ (err).errors;
    if (!errors) throw err;
    return {
      errors: errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)),
      outputs: [],
    };
  }
}

/**
 * Checks the engines.node of every package the agent needs at run time, from package-lock.json (so platform variants
 * not installed on this machine, e.g. @img/sharp-linux-arm64, are checked too).
 * @param {{ target?: string, lockPath?: string, workspace?: string }} [options]
 * @returns {{ checked: number, problems: { name: string, path: string, engines: string }[] }}
 */
export function checkEngines(options = {}) {
  const target = options.target ?? NODE_TARGET;
  const lock = JSON.parse(readFileSync(options.lockPath ?? join(REPO_ROOT, 'package-lock.json'), 'utf8'));
  /** @type {Record<string, any>} */
  const packages = lock.packages ?? {};
  const start = options.workspace ?? 'packages/edge-agent';
  const seen = new Set();
  /** @type {{ name: string, path: string, engines: string }[]} */
  const problems = [];
  /** @type {string[]} */
  const queue = [start];
  while (queue.length > 0) {
    let key = /** @type {string} */ (queue.shift());
    while (packages[key]?.link && packages[key].resolved) key = packages[key].resolved;
    if (seen.has(key)) continue;
    seen.add(key);
    const entry = packages[key];
    if (!entry) continue;
    const engines = entry.engines?.node;
    if (key !== start && typeof engines === 'string' && !satisfies(target, engines)) {
      problems.push({ name: entry.name ?? key.replace(/^.*node_modules\//, ''), path: key, engines });
    }
    const deps = { ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies };
    for (const dep of Object.keys(deps)) {
      const found = resolveInLock(packages, key, dep);
      if (found) queue.push(found);
      else if (!entry.peerDependenciesMeta?.[dep]?.optional && !entry.optionalDependencies?.[dep] && !entry.peerDependencies?.[dep]) {
        problems.push({ name: dep, path: `${key} -> ${dep}`, engines: '(not in package-lock.json)' });
      }
    }
  }
  return { checked: seen.size - 1, problems };
}

/** Node's lookup: `<from>/node_modules/<dep>`, then each parent's node_modules, up to the root. */
function resolveInLock(/** @type {Record<string, any>} */ packages, /** @type {string} */ from, /** @type {string} */ dep) {
  let dir = from;
  for (;;) {
    const candidate = dir === '' ? `node_modules/${dep}` : `${dir}/node_modules/${dep}`;
    if (packages[candidate]) return candidate;
    if (dir === '') return undefined;
    const cut = dir.lastIndexOf('/node_modules/');
    dir = cut >= 0 ? dir.slice(0, cut) : '';
  }
}

/**
 * Runs the whole check and returns a report; `ok` is false on esbuild errors, findings or engines problems.
 * @param {{ target?: string, entryPoints?: string[] }} [options]
 */
export async function checkNodeTarget(options = {}) {
  const target = options.target ?? NODE_TARGET;
  const entryPoints = options.entryPoints ?? agentEntryPoints();
  const built = await bundle(entryPoints, { target });
  const findings = built.outputs.flatMap((o) => scanBundle(o.text, { target, fileName: o.path }));
  const engines = checkEngines({ target });
  return {
    target,
    entryPoints: entryPoints.map((e) => relative(REPO_ROOT, e)),
    esbuildErrors: built.errors,
    findings,
    engines,
    ok: built.errors.length === 0 && findings.length === 0 && engines.problems.length === 0,
  };
}

async function main() {
  const args = process.argv.slice(2);
  const t = args.indexOf('--target');
  const target = t >= 0 ? args[t + 1] : NODE_TARGET;
  const report = await checkNodeTarget({ target });
  if (args.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const out = [`kd-agent Node.js target ${report.target}: ${report.entryPoints.join(', ')}`];
    for (const e of report.esbuildErrors) out.push(`  esbuild: ${e}`);
    for (const f of report.findings) out.push(`  ${f.file}:${f.line}: ${f.id} needs Node ${f.since} (${f.source})\n      ${f.excerpt}`);
    for (const p of report.engines.problems) out.push(`  dependency ${p.name} (${p.path}): engines.node "${p.engines}" excludes ${report.target}`);
    out.push(report.ok ? `  ok (${report.engines.checked} runtime packages checked)` : '  FAILED');
    process.stdout.write(`${out.join('\n')}\n`);
  }
  process.exitCode = report.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main();
}
