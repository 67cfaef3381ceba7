import { randomBytes } from 'node:crypto';
import { adaptRecipeSchema, COMMAND_ID_RE, makeCommand, ProtocolError, type CommandFields } from '@kd-edge/core/protocol';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import { artifactPath } from '../artifacts/artifact-path.js';
import { FleetError } from '../db/fleet-error.js';
import type { DeviceRegistry } from '../devices/device-registry.js';
import type { PackageRecord } from '../registry/package-record.js';
import type { PackageRegistry } from '../registry/package-registry.js';
import type { RolloutCommand } from '../rollout/rollout-engine.js';
import { AdaptError } from './adapt-error.js';

/** How a deploy tells the device to fetch the package: over HTTP from kd-fleet, or as MQTT chunks. */
export type DeployTransport = 'http' | 'mqtt';

/** Chunk size of MQTT deploys (the rollouts' too). */
export const DEPLOY_CHUNK_SIZE = 256 * 1024;

/** What {@link deployCommandFor} needs besides the package. */
export interface DeployCommandInput {
  deviceId: string;
  commandId: string;
  /** Base URL of the artifacts, for `http`. */
  publicUrl: string;
  transport: DeployTransport;
  rolloutId?: string;
  gates?: Record<string, number>;
  benchmark?: Record<string, number>;
}

/**
 * The (unsigned) deploy command of a registry package for one device, as rollouts and teacher pushes both send it:
 * the package's identity, hash and size, where its bytes are, and its signed manifest (which tells the agent its role).
 */
export function deployCommandFor(pkg: PackageRecord, o: DeployCommandInput): RolloutCommand {
  const where = o.transport === 'mqtt' ? { mqtt: { chunkSize: DEPLOY_CHUNK_SIZE } } : { http: { url: `${o.publicUrl}${artifactPath(pkg.name, pkg.version)}` } };
  return makeCommand({
    command: 'deploy', id: o.commandId, deviceId: o.deviceId, ...(o.rolloutId !== undefined ? { rolloutId: o.rolloutId } : {}),
    package: { name: pkg.name, version: pkg.version, sha256: pkg.sha256, size: pkg.size, ...where },
    manifest: pkg.manifest,
    ...(o.gates !== undefined ? { gates: o.gates } : {}),
    ...(o.benchmark !== undefined ? { benchmark: o.benchmark } : {}),
  } as CommandFields) as RolloutCommand;
}

/** Options of {@link DeviceCommands}. */
export interface DeviceCommandsOptions {
  registry: PackageRegistry;
  devices: DeviceRegistry;
  /** Publish a command on the device's command topic (QoS 1); resolves once the broker has it. */
  send: (deviceId: string, command: RolloutCommand) => Promise<void>;
  /** Sign a command with the fleet's command key; without one, commands go unsigned (as rollouts' do). */
  sign?: (command: RolloutCommand) => RolloutCommand;
  /** Base URL agents download artifacts from. */
  publicUrl: string;
  /** New random ids (command and job ids); 12 hex characters by default. */
  newId?: () => string;
  logger?: Logger;
}

/** What a sent command was. */
export interface SentCommand {
  deviceId: string;
  commandId: string;
}

/** A teacher push as sent. */
export interface TeacherPush extends SentCommand {
  package: { name: string; version: string; sha256: string };
}

/** An adapt or adapt-cancel command as sent. */
export interface AdaptCommandSent extends SentCommand {
  jobId: string;
}

/** The fields of `POST /api/devices/:id/adapt`. */
const ADAPT_FIELDS = ['jobId', 'base', 'teacher', 'recipe', 'activate'] as const;
const RECIPE_FIELDS = Object.keys(adaptRecipeSchema.shape);

/**
 * The commands kd-fleet sends one device at a time for on-device adaptation (issue 16): a teacher package pushed with
 * the same signed `deploy` a rollout sends (the agent installs a teacher beside its models and never serves it), and
 * the `adapt` and `adapt-cancel` commands. Requests are checked before anything is sent, each refusal naming its field.
 * @example
 * const commands = new DeviceCommands({ registry, devices, send, sign, publicUrl: 'http://fleet:8080' });
 * const { jobId } = await commands.startAdapt('cam-01', { teacher: { name: 'shapes-teacher', version: '1.0.0' }, recipe: { epochs: 5 } });
 */
export class DeviceCommands {
  readonly #o: DeviceCommandsOptions;
  readonly #log: Logger;

  constructor(options: DeviceCommandsOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.send !== 'function') throw new TypeError('options.send must be a function');
    if (typeof options.publicUrl !== 'string') throw new TypeError('options.publicUrl must be a URL');
    this.#o = { ...options, publicUrl: options.publicUrl.replace(/\/$/, '') };
    this.#log = options.logger ?? silentLogger;
  }

  #newId(): string {
    return (this.#o.newId ?? (() => randomBytes(6).toString('hex')))();
  }

  #requireDevice(deviceId: string): void {
    if (typeof deviceId !== 'string' || this.#o.devices.get(deviceId) === undefined) {
      throw new FleetError('FLEET_DEVICE_NOT_FOUND', `no device ${JSON.stringify(deviceId)} in fleet ${this.#o.devices.fleet}`);
    }
  }

  async #send(deviceId: string, command: RolloutCommand): Promise<void> {
    await this.#o.send(deviceId, this.#o.sign === undefined ? command : this.#o.sign(command));
  }

  /**
   * Push teacher package `name@version` from the registry to a device: a deploy command (HTTP by default). FleetError
   * FLEET_DEVICE_NOT_FOUND / FLEET_PACKAGE_NOT_FOUND, AdaptError FLEET_PACKAGE_ROLE for a serving model (roll it out).
   */
  async pushTeacher(deviceId: string, input: { name?: unknown; version?: unknown; transport?: unknown }): Promise<TeacherPush> {
    const { name, version } = input;
    if (typeof name !== 'string' || name === '') throw new AdaptError('FLEET_BAD_REQUEST', `name: expected the teacher package's name, got ${show(name)}`, { field: 'name' });
    if (typeof version !== 'string' || version === '') throw new AdaptError('FLEET_BAD_REQUEST', `version: expected the teacher package's version, got ${show(version)}`, { field: 'version' });
    const transport = input.transport ?? 'http';
    if (transport !== 'http' && transport !== 'mqtt') throw new AdaptError('FLEET_BAD_REQUEST', `transport: expected "http" or "mqtt", got ${show(transport)}`, { field: 'transport' });
    this.#requireDevice(deviceId);
    const pkg = this.#o.registry.get(name, version);
    if (pkg === undefined) throw new FleetError('FLEET_PACKAGE_NOT_FOUND', `package ${name}@${version} is not in the registry (kd-fleet models push)`);
    if (pkg.role !== 'teacher') {
      throw new AdaptError('FLEET_PACKAGE_ROLE', `${name}@${version} is a ${pkg.role} package, not a teacher: serving models go to devices by a rollout (kd-fleet rollout start)`, { field: 'name' });
    }
    const commandId = `teacher-${this.#newId()}`;
    await this.#send(deviceId, deployCommandFor(pkg, { deviceId, commandId, publicUrl: this.#o.publicUrl, transport }));
    this.#log.info(`adapt: pushed teacher ${name}@${version} to ${deviceId} (command ${commandId})`);
    return { deviceId, commandId, package: { name, version, sha256: pkg.sha256 } };
  }

  /**
   * Start an adaptation job on a device: `{jobId?, base?, teacher?, recipe?, activate?}` checked field by field (the
   * recipe with core's schema; unknown fields refused so that a typo is not silently ignored), then the `adapt` command.
   * A teacher named from the registry must be a teacher package. The job id is made when absent.
   */
  async startAdapt(deviceId: string, input: Record<string, unknown>): Promise<AdaptCommandSent> {
    for (const key of Object.keys(input)) {
      if (!(ADAPT_FIELDS as readonly string[]).includes(key)) {
        throw new AdaptError('FLEET_BAD_REQUEST', `${key}: unknown field; an adapt request has ${ADAPT_FIELDS.join(', ')}`, { field: key });
      }
    }
    const jobId = input.jobId ?? `adapt-${this.#newId()}`;
    if (typeof jobId !== 'string' || !COMMAND_ID_RE.test(jobId)) {
      throw new AdaptError('FLEET_BAD_REQUEST', `jobId: expected 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":", "-", got ${show(jobId)}`, { field: 'jobId' });
    }
    const base = modelRef(input.base, 'base');
    const teacher = modelRef(input.teacher, 'teacher');
    const recipe = checkRecipe(input.recipe);
    if (input.activate !== undefined && typeof input.activate !== 'boolean') {
      throw new AdaptError('FLEET_BAD_REQUEST', `activate: expected true or false, got ${show(input.activate)}`, { field: 'activate' });
    }
    this.#requireDevice(deviceId);
    if (teacher !== undefined) {
      const pkg = this.#o.registry.get(teacher.name, teacher.version);
      if (pkg !== undefined && pkg.role !== 'teacher') {
        throw new AdaptError('FLEET_PACKAGE_ROLE', `teacher: ${teacher.name}@${teacher.version} is a ${pkg.role} package, not a teacher`, { field: 'teacher' });
      }
    }
    const command = validCommand({
      command: 'adapt', id: `adapt-cmd-${this.#newId()}`, deviceId, jobId,
      ...(base ? { base } : {}), ...(teacher ? { teacher } : {}), ...(recipe ? { recipe } : {}),
      ...(input.activate !== undefined ? { activate: input.activate } : {}),
    });
    await this.#send(deviceId, command);
    this.#log.info(`adapt: started job ${jobId} on ${deviceId} (command ${command.id})`);
    return { deviceId, jobId, commandId: command.id };
  }

  /** Cancel job `jobId` on a device (`adapt-cancel`); the device answers for a job it does not know. */
  async cancelAdapt(deviceId: string, jobId: string): Promise<AdaptCommandSent> {
    if (typeof jobId !== 'string' || !COMMAND_ID_RE.test(jobId)) throw new AdaptError('FLEET_BAD_REQUEST', `jobId: not a job id: ${show(jobId)}`, { field: 'jobId' });
    this.#requireDevice(deviceId);
    const command = validCommand({ command: 'adapt-cancel', id: `adapt-cancel-${this.#newId()}`, deviceId, jobId });
    await this.#send(deviceId, command);
    this.#log.info(`adapt: asked ${deviceId} to cancel job ${jobId} (command ${command.id})`);
    return { deviceId, jobId, commandId: command.id };
  }
}

function show(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v);
}

/** `{name, version}` of a model the device holds, or undefined when absent. */
function modelRef(v: unknown, field: 'base' | 'teacher'): { name: string; version: string } | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AdaptError('FLEET_BAD_REQUEST', `${field}: expected {name, version}, got ${show(v)}`, { field });
  const { name, version } = v as { name?: unknown; version?: unknown };
  if (typeof name !== 'string') throw new AdaptError('FLEET_BAD_REQUEST', `${field}.name: expected a model name, got ${show(name)}`, { field: `${field}.name` });
  if (typeof version !== 'string') throw new AdaptError('FLEET_BAD_REQUEST', `${field}.version: expected a version, got ${show(version)}`, { field: `${field}.version` });
  return { name, version };
}

/**
 * The recipe overrides: an object of known fields (an unknown one is named, so that a typo is not silently ignored);
 * the values are checked with core's schema when the command is built.
 */
function checkRecipe(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new AdaptError('FLEET_BAD_REQUEST', `recipe: expected an object of ${RECIPE_FIELDS.join(', ')}, got ${show(v)}`, { field: 'recipe' });
  }
  const unknown = Object.keys(v).find((k) => !RECIPE_FIELDS.includes(k));
  if (unknown !== undefined) {
    throw new AdaptError('FLEET_BAD_REQUEST', `recipe.${unknown}: unknown recipe field; known: ${RECIPE_FIELDS.join(', ')}`, { field: `recipe.${unknown}` });
  }
  return v as Record<string, unknown>;
}

/** The command built and validated by core; a refusal names its field without the command's name in front. */
function validCommand(fields: Record<string, unknown>): RolloutCommand {
  try {
    return makeCommand(fields as CommandFields) as RolloutCommand;
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    const message = err.message.replace(/^adapt(-cancel)?\./, '');
    throw new AdaptError('FLEET_BAD_REQUEST', message, { ...(err.field !== undefined && err.field !== '(root)' ? { field: err.field } : {}), cause: err });
  }
}
