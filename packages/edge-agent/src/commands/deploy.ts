import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canonicalJson, compareSemver, defaultModel, extractTar, manifestRole, verifyCommandSignature, verifyPackage, type DeployCommand, type BenchMessage, type PackageRole,
} from '@kd-edge/core';
import { AgentError } from '../errors.js';
import { OrtRuntime } from '../runtime/ort-runtime.js';
import type { ModelStore, StoredVersion } from '../store/model-store.js';
import { versionKey } from '../store/version-key.js';
import { benchmarkModel } from '../model/model-benchmark.js';
import { onDeviceAccuracy } from '../model/on-device-accuracy.js';
import { checkSpace } from '../transfer/disk-space.js';
import type { AgentServices } from './agent-services.js';
import type { CommandContext } from './command-context.js';
import { trtBenchmark } from './trt-benchmark.js';

/**
 * The deploy command: check limits and the version rule, fetch the package, verify it (size and SHA-256
 * of the tar, every file's hash, the signature against the pinned keys, the manifest against the
 * command's), install it in the store, load and warm it up beside the serving model, benchmark it, and
 * activate it only when every gate holds. Until then the old model serves; a failed gate is reported
 * (`failed`, then `rolled_back` naming the version still active) and nothing changes.
 */
export async function deploy(agent: AgentServices, cmd: DeployCommand, raw: unknown, ctx: CommandContext): Promise<void> {
  if (manifestRole(cmd.manifest) === 'teacher') return deployTeacher(agent, cmd, raw, ctx);
  const pkg = cmd.package;
  const active = agent.active();
  if (active !== undefined && active.manifest.name === pkg.name && active.manifest.version === pkg.version && active.stored.info.sha256 === pkg.sha256) {
    await ctx.event('succeeded', { result: { version: pkg.version, alreadyActive: true } });
    return;
  }
  const stored = await fetchVerifyInstall(agent, agent.store, 'model', cmd, raw, ctx);

  await ctx.event('activating', { message: 'loading and warming up beside the serving model' });
  const candidate = await agent.load(stored, 'deploy');
  let activated = false;
  try {
    await ctx.event('benchmarking');
    const accuracy = await onDeviceAccuracy(candidate);
    const bench = agent.transformBench(await benchmarkModel(candidate, {
      deviceId: agent.deviceId, commandId: cmd.id,
      warmup: cmd.benchmark?.warmup ?? agent.config.benchmark.warmup,
      iterations: cmd.benchmark?.iterations ?? agent.config.benchmark.iterations,
      accuracy,
    }));
    await agent.publishBench(bench);
    const trt = await trtBenchmark(agent, candidate, cmd.id);
    if (trt !== undefined) await agent.publishBench(trt);
    const failure = gateFailure(cmd, bench);
    if (failure !== undefined) {
      const still = active === undefined ? 'no model' : `${active.manifest.name}@${active.manifest.version}`;
      await ctx.event('failed', { code: failure.code, message: failure.message, result: summary(bench) });
      await ctx.event('rolled_back', { code: failure.code, message: `${failure.message}; ${still} keeps serving`, result: { active: active?.manifest.version ?? null } });
      return;
    }
    await agent.activate(candidate, 'activate');
    activated = true;
    await ctx.event('succeeded', { result: { version: pkg.version, ...summary(bench), ...(trt ? { tensorrt: summary(trt) } : {}) } });
  } finally {
    if (!activated) await candidate.detector.dispose().catch(() => undefined);
  }
}

/**
 * A teacher package (manifest `role: "teacher"`, issue 16): fetched and verified like any package, but
 * against the teacher role only, installed in the teacher store and made its current teacher, never loaded for
 * serving or benchmarked. It is opened once in ONNX Runtime first, so a teacher that cannot run never becomes current.
 */
async function deployTeacher(agent: AgentServices, cmd: DeployCommand, raw: unknown, ctx: CommandContext): Promise<void> {
  const pkg = cmd.package;
  const current = agent.teachers.current();
  if (current !== null && current.info.name === pkg.name && current.info.version === pkg.version && current.info.sha256 === pkg.sha256) {
    await ctx.event('succeeded', { result: { version: pkg.version, role: 'teacher', alreadyInstalled: true } });
    return;
  }
  const stored = await fetchVerifyInstall(agent, agent.teachers, 'teacher', cmd, raw, ctx);
  await ctx.event('activating', { message: 'opening the teacher in ONNX Runtime (it is stored, not served)' });
  const file = join(stored.dir, defaultModel(cmd.manifest).file);
  try {
    const rt = await OrtRuntime.load(file, { executionProviders: agent.config.runtime.providers });
    await rt.dispose();
  } catch (err) {
    throw new AgentError('AGENT_TEACHER_INVALID', `teacher ${pkg.name}@${pkg.version} does not load: ${(err as Error).message}`, { cause: err });
  }
  await agent.teachers.activate(stored.key);
  await agent.teachers.gc().catch(() => undefined);
  await ctx.event('succeeded', { result: { version: pkg.version, role: 'teacher', serving: false } });
}

/**
 * The steps every deploy shares: the version rule and size limit, the download (resumable, in the store's own
 * folder), and verification (tar, files, signature against the pinned keys, the manifest against the command's,
 * the role) before the install into `store`. A tar that fails verification is deleted.
 */
async function fetchVerifyInstall(
  agent: AgentServices, store: ModelStore, role: PackageRole, cmd: DeployCommand, raw: unknown, ctx: CommandContext,
): Promise<StoredVersion> {
  const pkg = cmd.package;
  await checkVersionRule(agent, store, cmd, raw);
  const limit = agent.config.limits.maxPackageBytes;
  if (pkg.size > limit) {
    throw new AgentError('AGENT_PACKAGE_TOO_LARGE', `package ${pkg.name}@${pkg.version} is ${pkg.size} bytes; this device accepts at most ${limit}`);
  }
  // The store's own folder: it survives restarts (resume) and the store's recovery clears what a crash left there.
  const downloads = store.downloadsDir;
  await mkdir(downloads, { recursive: true });
  // The tar and its extracted copy coexist until the install.
  await checkSpace(downloads, 2 * pkg.size, { reserveBytes: agent.config.limits.reserveDiskBytes });

  const tar = join(downloads, `${pkg.sha256}.tar`);
  await ctx.event('downloading', { progress: { bytes: 0, total: pkg.size } });
  await agent.fetchPackage(cmd, tar, ctx);

  await ctx.event('verifying');
  const staging = await store.stagingPath();
  let stored: StoredVersion;
  try {
    await extractTar(tar, staging, { maxFileBytes: limit, maxTotalBytes: limit * 4 });
    const verified = await verifyPackage(staging, { trustedKeys: agent.trustedKeys, maxTotalBytes: limit * 4, roles: [role] });
    if (canonicalJson(verified.manifest) !== canonicalJson(cmd.manifest)) {
      throw new AgentError('AGENT_MANIFEST_MISMATCH', `the package's manifest.json differs from the manifest in the command (${pkg.name}@${pkg.version})`);
    }
    stored = await store.install(staging, { name: pkg.name, version: pkg.version, sha256: pkg.sha256 });
  } catch (err) {
    await store.releaseStaging(staging).catch(() => undefined);
    // A tar that fails verification is not worth resuming from.
    await rm(tar, { force: true });
    throw err;
  }
  await rm(tar, { force: true });
  return stored;
}

/**
 * Versions of a model name only go up over everything that has been active on this device (the store's high-water
 * mark, which survives other names being deployed in between, rollbacks and restarts), unless the command is a
 * signed downgrade; the highest version must be the same model: the same bytes, or the same manifest and files signed
 * again (a fleet promoting a device's adaptation re-signs it with its own key, and may roll it out to that device).
 */
async function checkVersionRule(agent: AgentServices, store: ModelStore, cmd: DeployCommand, raw: unknown): Promise<void> {
  const { name, version, sha256 } = cmd.package;
  const mark = store.highWater(name);
  if (mark === undefined) return;
  const order = compareSemver(version, mark.version);
  if (order > 0 || (order === 0 && sha256 === mark.sha256)) return;
  // Build metadata never orders versions (semver.org §10), but it names distinct ones: an on-device adaptation
  // `1.0.0+adapt.cam-01.1` and the fleet's `1.0.0` it came from are siblings, and either may follow the other
  // (a fleet redeploying its release over a device's adaptation is a return, not a downgrade). Only the same
  // version string with other bytes, or an older release, is refused.
  if (order === 0 && version !== mark.version) return;
  if (order === 0 && await resignedMark(store, cmd, mark.sha256)) return;
  const what = order === 0
    ? `the same version as ${name}@${mark.version} once active here, with different contents`
    : `older than ${name}@${mark.version}, the highest version of ${name} active on this device so far`;
  if (cmd.allowDowngrade !== true) {
    throw new AgentError('AGENT_DOWNGRADE_REFUSED', `${name}@${version} is ${what}; a downgrade needs allowDowngrade and a signed command`);
  }
  try {
    verifyCommandSignature(raw, agent.trustedKeys);
  } catch (err) {
    throw new AgentError('AGENT_DOWNGRADE_REFUSED', `${name}@${version} is ${what}, and the downgrade is not validly signed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Whether the command's package is the marked version signed again: the marked package is still in the store and its
 * manifest, signature aside, equals the command's (the manifest lists every file with its SHA-256, and the package is
 * verified against it before install, so the model's bytes are the same).
 */
async function resignedMark(store: ModelStore, cmd: DeployCommand, markSha256: string): Promise<boolean> {
  const { name, version } = cmd.package;
  const marked = store.get(versionKey({ name, version, sha256: markSha256 }));
  if (marked === undefined) return false;
  try {
    const have = JSON.parse(await readFile(join(marked.dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const unsigned = ({ signature: _signature, ...rest }: Record<string, unknown>): string => canonicalJson(rest);
    return unsigned(have) === unsigned(cmd.manifest as unknown as Record<string, unknown>);
  } catch {
    return false;
  }
}

function gateFailure(cmd: DeployCommand, bench: BenchMessage): { code: 'AGENT_GATE_LATENCY' | 'AGENT_GATE_FPS' | 'AGENT_GATE_ACCURACY'; message: string } | undefined {
  const g = cmd.gates ?? {};
  if (g.maxP95Ms !== undefined && bench.latencyMs.p95 > g.maxP95Ms) {
    return { code: 'AGENT_GATE_LATENCY', message: `p95 latency ${bench.latencyMs.p95.toFixed(2)} ms is over the budget of ${g.maxP95Ms} ms` };
  }
  if (g.minFps !== undefined && bench.throughputFps < g.minFps) {
    return { code: 'AGENT_GATE_FPS', message: `throughput ${bench.throughputFps.toFixed(1)} fps is under the required ${g.minFps} fps` };
  }
  if (g.minMap50 !== undefined && bench.accuracy !== undefined && bench.accuracy.map50 < g.minMap50) {
    return { code: 'AGENT_GATE_ACCURACY', message: `on-device mAP50 ${bench.accuracy.map50.toFixed(3)} on ${bench.accuracy.images} val images is under the required ${g.minMap50}` };
  }
  return undefined;
}

/** The figures a final event carries (the whole report went to `bench`). */
export function summary(bench: BenchMessage): Record<string, unknown> {
  return {
    runtime: bench.runtime,
    executionProvider: bench.executionProvider,
    p50Ms: bench.latencyMs.p50,
    p95Ms: bench.latencyMs.p95,
    fps: bench.throughputFps,
    ...(bench.accuracy ? { map50: bench.accuracy.map50, map: bench.accuracy.map } : {}),
  };
}
