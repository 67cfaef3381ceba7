import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from '@kd-edge/core/util';
import { FleetSimulator } from './fleet-simulator.js';
import type { ProfileChoice } from './device-plan.js';

/** Options of `kd-fleet simulate`, as commander hands them over (strings or numbers). */
export interface SimulateCliOptions {
  devices: number | string;
  profile?: string;
  failRate?: number | string;
  /** Default mqtt://127.0.0.1:1883 (kd-fleet serve's embedded broker). */
  broker?: string;
  fleet?: string;
  /** The fleet's public key file(s). */
  key?: string | string[];
  /** Data root (default `<tmp>/kd-fleet-sim-<fleet>`, reused by the next run). */
  data?: string;
  processes?: number | string;
  /** MQTT version 4 (default) or 5. */
  mqtt?: number | string;
  seed?: string;
}

/** Where `runSimulate` writes its lines and what stops it. */
export interface SimulateIo {
  /** One line of output (default: process.stdout). */
  write?: (line: string) => void;
  /** Stops the simulation; without it SIGINT and SIGTERM do. */
  signal?: AbortSignal;
  logger?: Logger;
}

/**
 * `kd-fleet simulate --devices N [--profile nano|orin|x86|mix] [--fail-rate p] [--broker URL] [--fleet ID] [--key FILE]
 * [--data DIR] [--processes K]`: starts the simulated devices, reports when they are online, runs until stopped
 * (SIGINT/SIGTERM or `io.signal`), then stops them cleanly. Returns the exit code; bad options throw RangeError.
 */
export async function runSimulate(options: SimulateCliOptions, io: SimulateIo = {}): Promise<number> {
  const write = io.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const devices = int('--devices', options.devices, 1, 100_000);
  const profile = (options.profile ?? 'mix') as ProfileChoice;
  if (!['nano', 'orin', 'x86', 'mix'].includes(profile)) throw new RangeError(`--profile must be nano, orin, x86 or mix, got ${JSON.stringify(options.profile)}`);
  const failRate = options.failRate === undefined ? 0 : Number(options.failRate);
  if (!(failRate >= 0 && failRate <= 1)) throw new RangeError(`--fail-rate must be a number 0..1, got ${JSON.stringify(options.failRate)}`);
  const keys = options.key === undefined ? [] : Array.isArray(options.key) ? options.key : [options.key];
  if (keys.length === 0) throw new RangeError('--key FILE is needed: the fleet public key the simulated devices trust');
  const fleet = options.fleet ?? 'default';
  const processes = options.processes === undefined ? 1 : int('--processes', options.processes, 1, 256);
  const mqtt = options.mqtt === undefined ? 4 : int('--mqtt', options.mqtt, 4, 5);
  const root = resolve(options.data ?? join(tmpdir(), `kd-fleet-sim-${fleet}`));
  const broker = options.broker ?? 'mqtt://127.0.0.1:1883';

  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  if (io.signal) io.signal.addEventListener('abort', onSignal, { once: true });
  else {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  try {
    write(`starting ${devices} simulated devices (${profile}${failRate > 0 ? `, fail rate ${failRate}` : ''}) on ${broker}, fleet ${fleet}, data ${root}${processes > 1 ? `, ${processes} processes` : ''}`);
    const sim = await FleetSimulator.start({
      devices, profile, failRate, broker, fleet, keys: keys.map((k) => resolve(k)), root, processes, protocolVersion: mqtt as 4 | 5,
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(io.logger ? { logger: io.logger } : {}),
      // The broker may come later (or go away): agents keep reconnecting, so report instead of waiting.
      onlineTimeoutMs: 0,
    });
    sim.on('agentError', (id, err) => io.logger?.warn(`${id}: ${err.message}`));
    sim.on('childExit', (pid, code, signal) => write(`simulator child ${String(pid)} ended (${signal ?? `code ${String(code)}`})`));
    const announced = new Promise<void>((res) => {
      const check = (): void => {
        if (sim.online.size < devices) return;
        sim.off('online', check);
        res();
      };
      sim.on('online', check);
      check();
    });
    const aborted = new Promise<void>((res) => (stop.signal.aborted ? res() : stop.signal.addEventListener('abort', () => res(), { once: true })));
    await Promise.race([announced.then(() => write(`${devices} simulated devices online; Ctrl-C stops them`)), aborted]);
    await aborted;
    write(`stopping ${devices} simulated devices`);
    await sim.stop();
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.signal?.removeEventListener('abort', onSignal);
  }
}

function int(flag: string, value: number | string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${flag} must be an integer ${min}..${max}, got ${JSON.stringify(value)}`);
  return n;
}
