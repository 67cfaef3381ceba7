// Types for check-node-target.mjs, so the vitest suite can import it under strict TypeScript.

/** The Node.js version the agent must run on. */
export declare const NODE_TARGET: string;

/** Scanner rules for globals and members newer than the target. */
export declare const GLOBAL_RULES: readonly { id: string; since: string; source: string; pattern: RegExp; member?: boolean }[];

/** Scanner rules for named exports of built-in modules newer than the target. */
export declare const BUILTIN_RULES: readonly { module: string; name: string; since: string; source: string }[];

/** One API newer than the target, where the bundle uses it. */
export interface Finding {
  id: string;
  since: string;
  source: string;
  file: string;
  line: number;
  excerpt: string;
}

/** Compares two x.y.z versions; negative when a < b. */
export declare function compareVersions(a: string, b: string): number;

/** Whether a version satisfies an npm semver range as found in engines fields. */
export declare function satisfies(version: string, range: string): boolean;

/** Scans unminified esbuild ESM output for APIs newer than the target. */
export declare function scanBundle(code: string, options?: { target?: string; fileName?: string }): Finding[];

/** src/index.ts plus every src/bin/*.ts of the agent that exists. */
export declare function agentEntryPoints(agentDir?: string): string[];

/** Bundles for node<target>; resolves with esbuild's errors when syntax cannot be lowered. */
export declare function bundle(
  entryPoints: string[],
  options?: { target?: string; stdin?: string },
): Promise<{ errors: string[]; outputs: { path: string; text: string }[] }>;

/** Checks engines.node of the agent's runtime dependency tree in package-lock.json. */
export declare function checkEngines(options?: { target?: string; lockPath?: string; workspace?: string }): {
  checked: number;
  problems: { name: string; path: string; engines: string }[];
};

/** Runs bundle + scan + engines; `ok` is false on any problem. */
export declare function checkNodeTarget(options?: { target?: string; entryPoints?: string[] }): Promise<{
  target: string;
  entryPoints: string[];
  esbuildErrors: string[];
  findings: Finding[];
  engines: { checked: number; problems: { name: string; path: string; engines: string }[] };
  ok: boolean;
}>;
