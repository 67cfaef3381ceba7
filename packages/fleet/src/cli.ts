import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { LOG_LEVELS, stderrLogger, type LogLevel } from '@kd-edge/core/util';
import type { AdaptPullInfo } from './adapt/adapt-job.js';
import type { FleetContext } from './server/fleet-context.js';
import type { FleetHandler } from './server/fleet-server.js';

/** Options every client command shares: where the server is and the control token. */
interface ClientOpts {
  server: string;
  token?: string;
  json?: boolean;
}

async function api(o: ClientOpts, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
  const token = o.token ?? process.env.KD_FLEET_TOKEN;
  const res = await fetch(`${o.server.replace(/\/$/, '')}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': contentType } : {}) },
    body: body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body),
  }).catch((err: unknown) => {
    throw new Error(`cannot reach kd-fleet at ${o.server}: ${(err as Error).message}`);
  });
  const text = await res.text();
  const json = text === '' ? undefined : (JSON.parse(text) as unknown);
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new Error(`${res.status} ${e?.code ?? ''}: ${e?.message ?? text}`);
  }
  return json;
}

function print(o: ClientOpts, value: unknown, table: () => string[]): void {
  process.stdout.write(o.json ? `${JSON.stringify(value, null, 2)}\n` : `${table().join('\n')}\n`);
}

const pad = (s: unknown, n: number): string => String(s ?? '—').padEnd(n);

/**
 * Wraps a command's action: an error is printed as `kd-fleet: <message>` and makes the exit code 1; an action
 * that returns a non-zero number makes it that.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander hands positional args then options
type Run = (fn: (...a: any[]) => Promise<void | number>) => (...a: any[]) => Promise<void>;

/** Adds the options every client command shares: `--server`, `--token`, `--json`. */
function clientOptions(c: Command): Command {
  return c
    .option('--server <url>', 'kd-fleet HTTP address', process.env.KD_FLEET_URL ?? 'http://127.0.0.1:8080')
    .option('--token <token>', 'control token (default $KD_FLEET_TOKEN)')
    .option('--json', 'print JSON');
}

/**
 * kd-fleet's command line: `serve` (the server, embedded broker by default), `simulate` (real agents),
 * and client commands that talk to a running server's API: `models push|ls|show`, `devices ls|tag|key|accept-key|push-teacher|trt-versions`,
 * `rollout start|status|pause|resume|approve|abort`, `adapt start|list|show|cancel|pull`, `models promote`. Returns the exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('kd-fleet').description('model registry, staged rollouts gated on device benchmarks, and the live dashboard').exitOverride();
  let code = 0;
  const run: Run = (fn) => async (...a) => {
    try {
      const c = await fn(...a);
      if (typeof c === 'number' && c !== 0) code = c;
    } catch (err) {
      process.stderr.write(`kd-fleet: ${(err as Error).message}\n`);
      code = 1;
    }
  };
  addServeCommand(program, run);
  addSimulateCommand(program, run);
  addModelCommands(program, run);
  addDeviceCommands(program, run);
  addRolloutCommands(program, run);
  addAdaptCommands(program, run);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    return (err as { exitCode?: number }).exitCode ?? 2;
  }
  return code;
}

/** `serve`: the server until SIGINT or SIGTERM. */
function addServeCommand(program: Command, run: Run): void {
  program.command('serve')
    .description('run kd-fleet: HTTP (dashboard, API, artifacts) and an embedded MQTT broker unless --broker is given')
    .option('--data <dir>', 'SQLite database and package store', 'fleet-data')
    .option('--fleet <id>', 'fleet id (topic root kd/v1/<fleet>)', 'default')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <n>', 'HTTP port', '8080')
    .option('--mqtt-port <n>', 'embedded broker MQTT port', '1883')
    .option('--ws-port <n>', 'embedded broker MQTT-over-WebSocket port (0: none)', '8083')
    .option('--broker <url>', 'use an external MQTT 5 broker (Mosquitto, EMQX) instead')
    .option('--broker-username <name>').option('--broker-password <password>')
    .requiredOption('--trust <file...>', 'public key(s) packages must be signed by')
    .option('--sign-key <file>', 'private key that signs the commands sent, and re-signs promoted adapted packages (its public key among --trust)')
    .option('--upload-ttl <minutes>', 'how long an adapted package\'s one-time upload URL stays valid', '60')
    .option('--public-url <url>', 'base URL agents download artifacts from')
    .option('--chunk-rate <MiB/s>', 'MQTT chunk frames published per second, all devices together', '64')
    .option('--token-file <file>', 'control token (default $KD_FLEET_TOKEN; without one: read-only)')
    .addOption(new Option('--log-level <level>').choices(LOG_LEVELS).default('info'))
    .action(run(async (o: Record<string, string | string[] | undefined>) => {
      const { FleetServer } = await import('./server/fleet-server.js');
      const log = stderrLogger(o.logLevel as LogLevel);
      const token = o.tokenFile ? (await readFile(o.tokenFile as string, 'utf8')).trim() : process.env.KD_FLEET_TOKEN;
      const server = await FleetServer.start({
        dataDir: o.data as string, fleet: o.fleet as string, host: o.host as string, httpPort: Number(o.port),
        mqttPort: Number(o.mqttPort), wsPort: Number(o.wsPort) === 0 ? false : Number(o.wsPort),
        broker: o.broker as string | undefined, brokerUsername: o.brokerUsername as string | undefined, brokerPassword: o.brokerPassword as string | undefined,
        trustedKeys: o.trust as string[], signKey: o.signKey as string | undefined, publicUrl: o.publicUrl as string | undefined,
        token, logger: log, handlers: await webHandlers(), chunkBytesPerSecond: Number(o.chunkRate) * 1024 * 1024,
        adaptUploadTtlMs: Math.round(Number(o.uploadTtl) * 60_000),
      });
      server.on('error', (err) => log.warn(err.message));
      log.info(`kd-fleet ${o.fleet}: dashboard and API ${server.httpUrl}, MQTT ${server.mqttUrl}${server.wsUrl ? `, ${server.wsUrl}` : ''}${token ? '' : ' (read-only: no token)'}`);
      await new Promise<void>((resolve) => {
        const stop = (): void => void server.close().finally(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }));
}

/** `simulate`: N real kd-agents; the exit code is the simulator's. */
function addSimulateCommand(program: Command, run: Run): void {
  program.command('simulate')
    .description('start N real kd-agents against a broker (profiles scale their latency; --fail-rate injects failed deploys)')
    .requiredOption('--devices <n>').option('--profile <p>', 'nano|orin|x86|mix', 'mix').option('--fail-rate <p>', 'share of failing deploys', '0')
    .option('--broker <url>', 'MQTT broker', 'mqtt://127.0.0.1:1883').option('--fleet <id>', 'fleet id', 'default')
    .requiredOption('--key <file...>', 'fleet public key(s) the agents trust').option('--data <dir>', 'devices\' data folders')
    .option('--processes <k>', 'child processes', '1').option('--mqtt <v>', 'MQTT version 4 or 5', '4').option('--seed <s>')
    .action(run(async (o: Record<string, unknown>) => {
      const { runSimulate } = await import('./simulator/run-simulate.js');
      return runSimulate(o as never, { logger: stderrLogger('info') as never });
    }));
}

/** `models push|ls|show`: the package registry. */
function addModelCommands(program: Command, run: Run): void {
  const models = program.command('models').description('the package registry');
  clientOptions(models.command('push <package.tar>').description('upload a signed package (the server verifies it first)'))
    .action(run(async (file: string, o: ClientOpts) => {
      const rec = await api(o, 'POST', '/api/models', new Uint8Array(await readFile(file)), 'application/x-tar') as Record<string, unknown>;
      print(o, rec, () => [`pushed ${String(rec.name)}@${String(rec.version)} sha256 ${String(rec.sha256)} (${String(rec.size)} bytes)`]);
    }));
  clientOptions(models.command('ls').description('list packages'))
    .action(run(async (o: ClientOpts) => {
      const list = await api(o, 'GET', '/api/models') as Array<Record<string, unknown>>;
      print(o, list, () => [
        `${pad('NAME', 20)}${pad('VERSION', 26)}${pad('ROLE', 9)}${pad('SIZE', 12)}${pad('SHA256', 18)}ORIGIN`,
        ...list.map((p) => `${pad(p.name, 20)}${pad(p.version, 26)}${pad(p.role ?? 'model', 9)}${pad(p.size, 12)}${pad(String(p.sha256).slice(0, 16), 18)}${originText(p)}`),
      ]);
    }));
  clientOptions(models.command('promote <name> <version>').description('re-sign a package pulled from a device with the fleet key, so that it rolls out like any model'))
    .action(run(async (name: string, version: string, o: ClientOpts) => {
      const rec = await api(o, 'POST', `/api/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}/promote`) as Record<string, unknown>;
      print(o, rec, () => [`promoted ${String(rec.name)}@${String(rec.version)}: signed by key ${String(rec.keyId)}, sha256 ${String(rec.sha256)}; roll it out with kd-fleet rollout start`]);
    }));
  clientOptions(models.command('show <name> <version>').description('one package and its manifest'))
    .action(run(async (name: string, version: string, o: ClientOpts) => {
      const rec = await api(o, 'GET', `/api/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}`);
      print({ ...o, json: true }, rec, () => []);
    }));
}

/** A package's ORIGIN column: `device:<id> job <jobId>`, then `promoted` or `pulled` (not rolled out yet); `-` for a pushed one. */
function originText(p: Record<string, unknown>): string {
  const origin = p.origin as { deviceId?: string; jobId?: string } | null | undefined;
  if (origin === null || origin === undefined) return '-';
  return `device:${String(origin.deviceId)} job ${String(origin.jobId)} (${p.promotedAt === null || p.promotedAt === undefined ? 'pulled, not promoted' : 'promoted'})`;
}

/** `devices ls|tag|key|accept-key|push-teacher|trt-versions`: the devices the fleet has seen. */
function addDeviceCommands(program: Command, run: Run): void {
  const devices = program.command('devices').description('devices seen by the fleet');
  clientOptions(devices.command('ls').description('list devices').option('--tag <tag>').option('--online'))
    .action(run(async (o: ClientOpts & { tag?: string; online?: boolean }) => {
      const q = new URLSearchParams({ ...(o.tag ? { tag: o.tag } : {}), ...(o.online ? { online: 'true' } : {}) });
      const list = await api(o, 'GET', `/api/devices${q.size > 0 ? `?${q}` : ''}`) as Array<Record<string, unknown>>;
      // MODEL is wide enough for an adapted version (shapes@1.0.0+adapt.cam-01.1).
      // SERVES: the file, precision and path that serve the active model (issue 17), as the device's status says.
      print(o, list, () => [`${pad('ID', 22)}${pad('ONLINE', 8)}${pad('MODEL', 36)}${pad('SERVES', 40)}${pad('KEY', 19)}TAGS`, ...list.map((d) => {
        const m = d.activeModel as { name: string; version: string; file?: string; precision?: string; runtime?: string; serving?: string } | null;
        const serves = m?.file === undefined ? '—' : [m.file, m.precision, m.serving ?? m.runtime].filter(Boolean).join(' ');
        // A trailing "!" marks a device that reports a key other than its pinned one (see `devices key`).
        const k = d.deviceKey as DeviceKeyJson | null;
        const key = k === null ? '—' : `${k.keyId}${k.mismatch ? '!' : ''}`;
        return `${pad(d.id, 22)}${pad(d.online ? 'yes' : 'no', 8)}${pad(m ? `${m.name}@${m.version}` : '—', 35)} ${pad(serves, 39)} ${pad(key, 19)}${(d.tags as string[]).join(',')}`;
      })]);
    }));
  clientOptions(devices.command('tag <id> [tags...]').description('set a device\'s tags (replaces them)'))
    .action(run(async (id: string, tags: string[], o: ClientOpts) => {
      const d = await api(o, 'PUT', `/api/devices/${encodeURIComponent(id)}/tags`, { tags }) as Record<string, unknown>;
      print(o, d, () => [`${id}: ${(d.tags as string[]).join(', ') || '(no tags)'}`]);
    }));
  clientOptions(devices.command('key <id>').description('a device\'s pinned device key, and any other key it reported'))
    .action(run(async (id: string, o: ClientOpts) => {
      const { device } = await api(o, 'GET', `/api/devices/${encodeURIComponent(id)}`) as { device: { deviceKey: DeviceKeyJson | null } };
      print(o, device.deviceKey, () => keyLines(id, device.deviceKey));
    }));
  clientOptions(devices.command('accept-key <id> <keyId>')
    .description('pin the key a device reported in place of its pinned one (or name the pinned key to keep it and clear the mismatch)'))
    .action(run(async (id: string, keyId: string, o: ClientOpts) => {
      const d = await api(o, 'POST', `/api/devices/${encodeURIComponent(id)}/key/accept`, { keyId }) as { deviceKey: DeviceKeyJson | null };
      print(o, d, () => keyLines(id, d.deviceKey));
    }));
  clientOptions(devices.command('push-teacher <name> <version>')
    .description('send a teacher package to devices (a deploy each; the agent keeps it for adaptation and never serves it)')
    .option('--device <id...>', 'these devices').option('--tag <tag...>', 'every device with any of these tags')
    .option('--transport <t>', 'http or mqtt', 'http'))
    .action(run(async (name: string, version: string, o: ClientOpts & { device?: string[]; tag?: string[]; transport: string }) => {
      const ids = new Set(o.device ?? []);
      for (const tag of o.tag ?? []) {
        for (const d of await api(o, 'GET', `/api/devices?tag=${encodeURIComponent(tag)}`) as Array<{ id: string }>) ids.add(d.id);
      }
      if (ids.size === 0) throw new Error(o.device || o.tag ? 'no device matches --device/--tag' : 'name the devices: --device <id...> or --tag <tag...>');
      const sent: unknown[] = [];
      for (const id of [...ids].sort()) {
        sent.push(await api(o, 'POST', `/api/devices/${encodeURIComponent(id)}/teacher`, { name, version, transport: o.transport }));
      }
      print(o, sent, () => (sent as Array<{ deviceId: string; commandId: string }>).map((s) => `${s.deviceId}: teacher ${name}@${version} sent (command ${s.commandId})`));
    }));
  addTrtVersionsCommand(devices, run);
}

/** GET /api/tensorrt-versions, the fields the CLI prints. */
interface TrtVersionsJson {
  devices: number;
  versions: Array<{ tensorrt: string; devices: number; platforms: Array<{ jetson: string | null; l4t: string | null; devices: number }> }>;
  withoutTensorrt: number;
  notReported: number;
  unrecognised: Array<{ tensorrt: string; deviceIds: string[] }>;
}

/**
 * `devices trt-versions`: the TensorRT versions the devices report (issue 17); `--plain` prints only the comma-joined
 * list, for `kd-trainer export --trt-versions "$(kd-fleet devices trt-versions --plain)"`, and exits 1 when there is none.
 */
function addTrtVersionsCommand(devices: Command, run: Run): void {
  clientOptions(devices.command('trt-versions').description('the TensorRT versions the devices report, for kd-trainer export --trt-versions')
    .option('--tag <tag>', 'only devices with this tag').option('--online', 'only online devices')
    .option('--plain', 'print only the comma-joined versions (exit 1 when no device reports one)'))
    .action(run(async (o: ClientOpts & { tag?: string; online?: boolean; plain?: boolean }) => {
      const q = new URLSearchParams({ ...(o.tag ? { tag: o.tag } : {}), ...(o.online ? { online: 'true' } : {}) });
      const r = await api(o, 'GET', `/api/tensorrt-versions${q.size > 0 ? `?${q}` : ''}`) as TrtVersionsJson;
      const list = r.versions.map((v) => v.tensorrt).join(',');
      const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
      const none = `no device${o.tag ? ` tagged ${o.tag}` : ''}${o.online ? ' online' : ''} reports a TensorRT version ` +
        `(${plural(r.devices, 'device')}: ${r.withoutTensorrt} without TensorRT, ${r.notReported} without a status yet` +
        `${r.unrecognised.length > 0 ? `, ${r.unrecognised.reduce((n, u) => n + u.deviceIds.length, 0)} reporting something else` : ''})`;
      if (o.plain && !o.json) {
        if (list === '') {
          process.stderr.write(`kd-fleet: ${none}\n`);
          return 1;
        }
        process.stdout.write(`${list}\n`);
        return;
      }
      print(o, r, () => {
        if (r.versions.length === 0) return [none];
        const where = (p: TrtVersionsJson['versions'][number]['platforms'][number]): string =>
          `${p.jetson === null ? 'not a Jetson' : `${p.jetson}${p.l4t ? `, L4T ${p.l4t}` : ''}`} (${p.devices})`;
        return [
          `${pad('TENSORRT', 11)}${pad('DEVICES', 9)}REPORTED BY`,
          ...r.versions.map((v) => `${pad(v.tensorrt, 11)}${pad(v.devices, 9)}${v.platforms.map(where).join('; ')}`),
          `without TensorRT: ${plural(r.withoutTensorrt, 'device')}; no status yet: ${plural(r.notReported, 'device')}`,
          ...r.unrecognised.map((u) => `not a TensorRT version: ${JSON.stringify(u.tensorrt)} (${u.deviceIds.join(', ')})`),
          `export for them: kd-trainer export … --trt-versions ${list}`,
        ];
      });
    }));
}

/** A device key as GET /api/devices/:id gives it. */
interface DeviceKeyJson {
  keyId: string;
  pinnedAt: number;
  mismatch: { keyId: string; seenAt: number } | null;
}

function keyLines(id: string, key: DeviceKeyJson | null): string[] {
  if (key === null) return [`${id}: no device key reported yet`];
  return [
    `${id}: pinned key ${key.keyId} (since ${new Date(key.pinnedAt).toISOString()})`,
    ...(key.mismatch ? [`${id}: MISMATCH: reports key ${key.mismatch.keyId} since ${new Date(key.mismatch.seenAt).toISOString()}; not accepted`] : []),
  ];
}

/** `rollout start|status|pause|resume|approve|abort`. */
function addRolloutCommands(program: Command, run: Run): void {
  const rollout = program.command('rollout').description('staged rollouts');
  clientOptions(rollout.command('start <name> <version>').description('roll a registry package out in waves')
    .option('--tag <tag...>', 'target devices with these tags').option('--device <id...>', 'target these devices (default: all)')
    .option('--canary <n>', 'devices in the first wave', '1').option('--waves <percents>', 'cumulative percentages after the canary', '50,100')
    .option('--max-p95 <ms>').option('--min-fps <n>').option('--min-map50 <x>')
    .option('--error-threshold <share>', 'failed share of a wave that aborts', '0.5').option('--success-threshold <share>', 'share that must succeed', '1')
    .option('--manual', 'wait for approval between waves').option('--rate <perMinute>', 'devices per minute', '60')
    .option('--transport <t>', 'http or mqtt', 'http'))
    .action(run(async (name: string, version: string, o: ClientOpts & Record<string, string | string[] | boolean | undefined>) => {
      const r = await api(o, 'POST', '/api/rollouts', rolloutInput(name, version, o)) as { id: string; warnings?: RolloutWarningJson[] };
      print(o, r, () => [`rollout ${r.id} started: ${name}@${version}`, ...warningLines(r.warnings)]);
    }));
  clientOptions(rollout.command('status [id]').description('a rollout with its waves and devices (default: all rollouts)'))
    .action(run(async (id: string | undefined, o: ClientOpts) => {
      if (id === undefined) {
        const list = await api(o, 'GET', '/api/rollouts') as Array<Record<string, unknown>>;
        print(o, list, () => [`${pad('ID', 14)}${pad('PACKAGE', 24)}${pad('STATE', 20)}WAVE`, ...list.map((r) => {
          const p = r.package as { name: string; version: string };
          return `${pad(r.id, 14)}${pad(`${p.name}@${p.version}`, 24)}${pad(r.state, 20)}${Number(r.currentWave) + 1}/${String(r.waveCount)}`;
        })]);
        return;
      }
      const r = await api(o, 'GET', `/api/rollouts/${encodeURIComponent(id)}`) as { rollout: Record<string, unknown>; executions: Array<Record<string, unknown>> };
      print(o, r, () => [
        `rollout ${id}: ${String(r.rollout.state)}${r.rollout.reason ? ` (${String(r.rollout.reason)})` : ''}`,
        ...warningLines(r.rollout.warnings as RolloutWarningJson[] | undefined),
        ...r.executions.map((e) => `  wave ${Number(e.wave) + 1}  ${pad(e.deviceId, 22)}${pad(e.state, 14)}${e.code ? `${String(e.code)}: ${String(e.message ?? '')}` : ''}`),
      ]);
    }));
  for (const action of ['pause', 'resume', 'approve', 'abort'] as const) {
    clientOptions(rollout.command(`${action} <id>`).description(`${action} a rollout`).option('--reason <text>'))
      .action(run(async (id: string, o: ClientOpts & { reason?: string }) => {
        const r = await api(o, 'POST', `/api/rollouts/${encodeURIComponent(id)}/${action}`, o.reason ? { reason: o.reason } : {}) as Record<string, unknown>;
        print(o, r, () => [`rollout ${id}: ${String(r.state)}`]);
      }));
  }
}

/** A rollout's warning as the API gives it (issue 17: `FLEET_TRT_NO_CACHE`, devices that will build fp16). */
interface RolloutWarningJson {
  code: string;
  message: string;
}

/** `warning FLEET_TRT_NO_CACHE: …`, one line per warning of a rollout. */
function warningLines(warnings: RolloutWarningJson[] | undefined): string[] {
  return (warnings ?? []).map((w) => `warning ${w.code}: ${w.message}`);
}

/** The body of POST /api/rollouts from `rollout start`'s options. */
function rolloutInput(name: string, version: string, o: Record<string, string | string[] | boolean | undefined>): unknown {
  const gates = {
    ...(o.maxP95 !== undefined ? { maxP95Ms: Number(o.maxP95) } : {}),
    ...(o.minFps !== undefined ? { minFps: Number(o.minFps) } : {}),
    ...(o.minMap50 !== undefined ? { minMap50: Number(o.minMap50) } : {}),
  };
  const target = o.device ? { deviceIds: o.device } : o.tag ? { tags: o.tag } : { all: true };
  return {
    package: { name, version }, target,
    waves: { canary: { count: Number(o.canary) }, percents: String(o.waves).split(',').map(Number) },
    gates, errorThreshold: Number(o.errorThreshold), successThreshold: Number(o.successThreshold),
    approval: o.manual ? 'manual' : 'auto', rate: { perMinute: Number(o.rate) },
    deploy: { transport: o.transport },
  };
}

/** The API and the dashboard on top of a server's context. */
async function webHandlers(): Promise<(ctx: FleetContext) => FleetHandler[]> {
  return (await import('./server/web-handlers.js')).webHandlers();
}

/** A job as GET /api/adapt-jobs lists it: the fields the CLI prints. */
interface AdaptJobJson {
  deviceId: string;
  jobId: string;
  state: string;
  base: { name: string; version: string };
  teacher: { name: string; version: string } | null;
  version: string | null;
  epoch: number | null;
  epochs: number | null;
  losses: Record<string, number> | null;
  holdout: { before: { map: number } | null; after: { map: number } | null } | null;
  val: { before: { map: number } | null; after: { map: number } | null } | null;
  accepted: boolean | null;
  reasons: string[];
  activated: boolean | null;
  code: string | null;
  message: string | null;
  ts: number;
  /** The fleet's pull of the adapted package; null when never pulled. */
  pull: AdaptPullInfo | null;
}

/**
 * `adapt show`'s pull line: where pulling the job's package stands, why it failed, the package it brought and what to
 * do next; none for a job that was never pulled and cannot be (not succeeded).
 */
function pullLine(device: string, j: AdaptJobJson): string[] {
  const p = j.pull;
  const iso = (ms: number | null): string => (ms === null ? '?' : new Date(ms).toISOString());
  const again = `pull again with kd-fleet adapt pull ${device} ${j.jobId}`;
  const command = p?.commandId ? ` (command ${p.commandId})` : '';
  if (p === null) return j.state === 'succeeded' ? [`  pull: not pulled (kd-fleet adapt pull ${device} ${j.jobId})`] : [];
  switch (p.state) {
    case 'requested':
      return [`  pull: requested at ${iso(p.requestedAt)}${command}, waiting for the device; its upload URL expires at ${iso(p.expiresAt)}`];
    case 'uploading':
      return [`  pull: uploading${command}: the device accepted; its upload URL expires at ${iso(p.expiresAt)}`];
    case 'failed':
      return [`  pull: failed ${p.code ?? ''}: ${p.message ?? ''}${command}; ${again}`];
    case 'expired':
      return [`  pull: expired at ${iso(p.expiresAt)} unused${command}; ${again}`];
    case 'pulled': {
      const k = p.package;
      if (k === null) return [`  pull: pulled${command}`];
      const promoted = k.promotedAt === null
        ? `signed by the device's key ${k.keyId}, not promoted (kd-fleet models promote ${k.name} ${k.version})`
        : `promoted at ${iso(k.promotedAt)}, signed by the fleet's key ${k.keyId}`;
      return [`  pull: pulled ${k.name}@${k.version} sha256 ${k.sha256.slice(0, 16)}, ${promoted}`];
    }
    default:
      return [`  pull: ${String((p as { state: unknown }).state)}${command}`];
  }
}

/** `0.412 → 0.455` for a set's mAP50-95 before and after, `—` when unknown. */
function beforeAfter(set: AdaptJobJson['holdout']): string {
  const f = (v: number | undefined): string => (v === undefined ? '?' : v.toFixed(3));
  if (set === null || (set.before === null && set.after === null)) return '—';
  return `${f(set.before?.map)}→${f(set.after?.map)}`;
}

/** `name@version` → {name, version}; the version may hold "@"-free build metadata (1.0.0+adapt.cam-01.1). */
function modelArg(value: string, option: string): { name: string; version: string } {
  const at = value.indexOf('@');
  if (at <= 0 || at === value.length - 1) throw new Error(`${option}: expected name@version, got ${JSON.stringify(value)}`);
  return { name: value.slice(0, at), version: value.slice(at + 1) };
}

/** The recipe overrides from `adapt start`'s options (numbers as given; the server names a bad one). */
function recipeOf(o: Record<string, unknown>): Record<string, number> {
  const map: Array<[string, string]> = [
    ['epochs', 'epochs'], ['imgsz', 'imgsz'], ['lr0', 'lr0'], ['pseudoConf', 'pseudoConf'], ['holdout', 'holdout'],
    ['timeBudget', 'timeBudgetSec'], ['memoryBudget', 'memoryBudgetMb'], ['minGain', 'minGain'], ['maxLoss', 'maxLoss'],
  ];
  const recipe: Record<string, number> = {};
  for (const [opt, field] of map) if (o[opt] !== undefined) recipe[field] = Number(o[opt]);
  return recipe;
}

/** `adapt start|list|show|cancel|pull`: on-device adaptation jobs (issue 16). */
function addAdaptCommands(program: Command, run: Run): void {
  const adapt = program.command('adapt').description('on-device adaptation jobs: a device fine-tunes its model on its own frames, taught by a teacher package');
  clientOptions(adapt.command('start <device>').description('start an adaptation job on a device (the adapt command)')
    .option('--job-id <id>', 'the job id (default: made by the server)')
    .option('--base <name@version>', 'refuse unless the device serves this model')
    .option('--teacher <name@version>', 'the teacher package (default: the device\'s configured or latest one)')
    .option('--epochs <n>').option('--imgsz <px>').option('--lr0 <x>').option('--pseudo-conf <x>').option('--holdout <share>')
    .option('--time-budget <sec>', 'training seconds over every resume').option('--memory-budget <MB>', 'memory the job may take')
    .option('--min-gain <x>', 'hold-out mAP50-95 gain needed to accept').option('--max-loss <x>', 'val mAP50-95 loss allowed')
    .option('--no-activate', 'keep an accepted model for review instead of activating it'))
    .action(run(async (device: string, o: ClientOpts & Record<string, unknown>) => {
      const recipe = recipeOf(o);
      const body = {
        ...(o.jobId !== undefined ? { jobId: o.jobId } : {}),
        ...(o.base !== undefined ? { base: modelArg(String(o.base), '--base') } : {}),
        ...(o.teacher !== undefined ? { teacher: modelArg(String(o.teacher), '--teacher') } : {}),
        ...(Object.keys(recipe).length > 0 ? { recipe } : {}),
        ...(o.activate === false ? { activate: false } : {}),
      };
      const r = await api(o, 'POST', `/api/devices/${encodeURIComponent(device)}/adapt`, body) as { jobId: string; commandId: string };
      print(o, r, () => [`${device}: adaptation job ${r.jobId} sent (command ${r.commandId}); follow it with kd-fleet adapt show ${device} ${r.jobId}`]);
    }));
  clientOptions(adapt.command('list').description('adaptation jobs, most recently updated first')
    .option('--device <id>').option('--state <states>', 'comma-separated job states'))
    .action(run(async (o: ClientOpts & { device?: string; state?: string }) => {
      const q = new URLSearchParams({ ...(o.device ? { device: o.device } : {}), ...(o.state ? { state: o.state } : {}) });
      const list = await api(o, 'GET', `/api/adapt-jobs${q.size > 0 ? `?${q}` : ''}`) as AdaptJobJson[];
      // PULL: the state of the job's latest pull, as `adapt show` reads it (— when never pulled).
      print(o, list, () => [
        `${pad('DEVICE', 18)}${pad('JOB', 22)}${pad('STATE', 12)}${pad('EPOCH', 8)}${pad('HOLDOUT', 14)}${pad('VAL', 14)}${pad('PULL', 11)}VERSION`,
        ...list.map((j) => `${pad(j.deviceId, 18)}${pad(j.jobId, 22)}${pad(j.state, 12)}${pad(j.epochs ? `${j.epoch ?? 0}/${j.epochs}` : '—', 8)}` +
          `${pad(beforeAfter(j.holdout), 14)}${pad(beforeAfter(j.val), 14)}${pad(j.pull?.state, 11)}${j.version ?? '—'}${j.activated ? ' (active)' : ''}`),
      ]);
    }));
  clientOptions(adapt.command('show <device> <jobId>').description('one job: its state, figures, reasons, the pull of its package, and the states it went through'))
    .action(run(async (device: string, jobId: string, o: ClientOpts) => {
      const d = await api(o, 'GET', `/api/devices/${encodeURIComponent(device)}/adapt-jobs/${encodeURIComponent(jobId)}`) as { job: AdaptJobJson; history: AdaptJobJson[] };
      const j = d.job;
      print(o, d, () => [
        `${device} ${jobId}: ${j.state}${j.code ? ` ${j.code}: ${j.message ?? ''}` : ''}`,
        `  base ${j.base.name}@${j.base.version}${j.teacher ? `, teacher ${j.teacher.name}@${j.teacher.version}` : ''}${j.version ? `, adapted ${j.version}` : ''}`,
        ...(j.epochs ? [`  epoch ${j.epoch ?? 0}/${j.epochs}${j.losses ? `  losses ${Object.entries(j.losses).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}` : ''}`] : []),
        `  hold-out mAP50-95 ${beforeAfter(j.holdout)}, val mAP50-95 ${beforeAfter(j.val)}`,
        ...(j.accepted !== null ? [`  ${j.accepted ? 'accepted' : 'not accepted'}${j.activated !== null ? `, ${j.activated ? 'activated' : 'not activated'}` : ''}`] : []),
        ...j.reasons.map((r) => `  - ${r}`),
        ...pullLine(device, j),
        `  states: ${d.history.map((h) => h.state).filter((s, i, all) => i === 0 || all[i - 1] !== s).join(' → ')}`,
      ]);
    }));
  clientOptions(adapt.command('cancel <device> <jobId>').description('cancel a job (the adapt-cancel command)'))
    .action(run(async (device: string, jobId: string, o: ClientOpts) => {
      const r = await api(o, 'POST', `/api/devices/${encodeURIComponent(device)}/adapt-jobs/${encodeURIComponent(jobId)}/cancel`) as { commandId: string };
      print(o, r, () => [`${device}: cancel of job ${jobId} sent (command ${r.commandId})`]);
    }));
  clientOptions(adapt.command('pull <device> <jobId>').description('ask a device to upload the adapted package of a succeeded job (verified against its device key)'))
    .action(run(async (device: string, jobId: string, o: ClientOpts) => {
      const r = await api(o, 'POST', `/api/devices/${encodeURIComponent(device)}/adapt-jobs/${encodeURIComponent(jobId)}/pull`) as { commandId: string; version: string };
      print(o, r, () => [`${device}: upload of ${r.version} (job ${jobId}) requested (command ${r.commandId}); it appears in kd-fleet models ls once received, then kd-fleet models promote`]);
    }));
}
