import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { LOG_LEVELS, stderrLogger, type LogLevel } from '@kd-edge/core/util';
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
 * and client commands that talk to a running server's API: `models push|ls|show`, `devices ls|tag|key|accept-key`,
 * `rollout start|status|pause|resume|approve|abort`. Returns the exit code.
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
    .option('--sign-key <file>', 'private key that signs rollback and downgrade commands')
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
      print(o, list, () => [`${pad('NAME', 20)}${pad('VERSION', 14)}${pad('SIZE', 12)}SHA256`, ...list.map((p) => `${pad(p.name, 20)}${pad(p.version, 14)}${pad(p.size, 12)}${String(p.sha256).slice(0, 16)}`)]);
    }));
  clientOptions(models.command('show <name> <version>').description('one package and its manifest'))
    .action(run(async (name: string, version: string, o: ClientOpts) => {
      const rec = await api(o, 'GET', `/api/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}`);
      print({ ...o, json: true }, rec, () => []);
    }));
}

/** `devices ls|tag|key|accept-key`: the devices the fleet has seen. */
function addDeviceCommands(program: Command, run: Run): void {
  const devices = program.command('devices').description('devices seen by the fleet');
  clientOptions(devices.command('ls').description('list devices').option('--tag <tag>').option('--online'))
    .action(run(async (o: ClientOpts & { tag?: string; online?: boolean }) => {
      const q = new URLSearchParams({ ...(o.tag ? { tag: o.tag } : {}), ...(o.online ? { online: 'true' } : {}) });
      const list = await api(o, 'GET', `/api/devices${q.size > 0 ? `?${q}` : ''}`) as Array<Record<string, unknown>>;
      print(o, list, () => [`${pad('ID', 22)}${pad('ONLINE', 8)}${pad('MODEL', 24)}${pad('KEY', 19)}TAGS`, ...list.map((d) => {
        const m = d.activeModel as { name: string; version: string } | null;
        // A trailing "!" marks a device that reports a key other than its pinned one (see `devices key`).
        const k = d.deviceKey as DeviceKeyJson | null;
        const key = k === null ? '—' : `${k.keyId}${k.mismatch ? '!' : ''}`;
        return `${pad(d.id, 22)}${pad(d.online ? 'yes' : 'no', 8)}${pad(m ? `${m.name}@${m.version}` : '—', 24)}${pad(key, 19)}${(d.tags as string[]).join(',')}`;
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
      const r = await api(o, 'POST', '/api/rollouts', rolloutInput(name, version, o)) as { id: string };
      print(o, r, () => [`rollout ${r.id} started: ${name}@${version}`]);
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
