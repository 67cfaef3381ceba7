import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { startMosquitto, type MosquittoHarness } from '../../edge-agent/test/mqtt-brokers.js';

/** Queue limits of the bench's Mosquitto, large enough that a burst of 256 KiB chunk frames is never dropped. */
export const MOSQUITTO_LIMITS = { maxQueuedMessages: 10_000, maxInflightMessages: 100 } as const;

/** A Mosquitto child on a free loopback port. */
export type BenchMosquitto = MosquittoHarness;

/** Starts Mosquitto: plain TCP on loopback, anonymous, no persistence, $SYS every second, unlimited queued bytes. */
export function startBenchMosquitto(): Promise<BenchMosquitto> {
  return startMosquitto({
    config: [
      'sys_interval 1', `max_queued_messages ${MOSQUITTO_LIMITS.maxQueuedMessages}`, 'max_queued_bytes 0',
      `max_inflight_messages ${MOSQUITTO_LIMITS.maxInflightMessages}`, 'max_keepalive 65535',
    ],
  });
}

/** The broker's cumulative counters and its 1-minute sent-bytes load, from $SYS. */
export interface SysSnapshot {
  messagesSent: number;
  bytesSent: number;
  bytesReceived: number;
  loadBytesSent1min: number;
}

/** Follows Mosquitto's $SYS counters; `peakLoad` is the highest 1-minute bytes/s load seen since `resetPeak`. */
export class SysWatcher {
  readonly latest: SysSnapshot = { messagesSent: 0, bytesSent: 0, bytesReceived: 0, loadBytesSent1min: 0 };
  peakLoad = 0;

  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const v = Number(payload.toString());
      if (!Number.isFinite(v)) return;
      if (topic === '$SYS/broker/messages/sent') this.latest.messagesSent = v;
      else if (topic === '$SYS/broker/bytes/sent') this.latest.bytesSent = v;
      else if (topic === '$SYS/broker/bytes/received') this.latest.bytesReceived = v;
      else if (topic === '$SYS/broker/load/bytes/sent/1min') {
        this.latest.loadBytesSent1min = v;
        this.peakLoad = Math.max(this.peakLoad, v);
      }
    });
  }

  static async start(url: string): Promise<SysWatcher> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'kd-bench-sys' });
    const w = new SysWatcher(client);
    await client.subscribeAsync(['$SYS/broker/load/bytes/sent/1min', '$SYS/broker/messages/sent', '$SYS/broker/bytes/sent', '$SYS/broker/bytes/received']);
    return w;
  }

  snapshot(): SysSnapshot {
    return { ...this.latest };
  }

  resetPeak(): void {
    this.peakLoad = 0;
  }

  async stop(): Promise<void> {
    await this.client.endAsync();
  }
}

/** What {@link measureCeiling} found: bytes delivered to the subscribers per second, and the frames delivered. */
export interface CeilingResult {
  subscribers: number;
  seconds: number;
  frames: number;
  mbPerSec: number;
}

/**
 * The broker alone: one mqtt.js publisher sends 256 KiB QoS 1 frames with `window` unacknowledged at most
 * to `subscribers` QoS 1 subscribers for `seconds`; the result counts payload bytes the subscribers received.
 * Every client runs in this process, so on a small machine the clients compete with the broker for CPU.
 */
export async function measureCeiling(url: string, subscribers: number, seconds: number, window = 16): Promise<CeilingResult> {
  const topic = 'bench/ceiling';
  const subs: MqttClient[] = [];
  let received = 0;
  let frames = 0;
  let counting = false;
  for (let i = 0; i < subscribers; i++) {
    const c = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `kd-bench-sub-${i}` });
    c.on('message', (_t, payload) => {
      if (!counting) return;
      received += payload.length;
      frames += 1;
    });
    await c.subscribeAsync(topic, { qos: 1 });
    subs.push(c);
  }
  const pub = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'kd-bench-pub' });
  const frame = Buffer.alloc(256 * 1024, 7);
  let stop = false;
  const pump = async (): Promise<void> => {
    while (!stop) await pub.publishAsync(topic, frame, { qos: 1 });
  };
  const pumps = Array.from({ length: window }, () => pump());
  await delay(1000); // warm up: queues fill, TCP windows open
  counting = true;
  const t0 = performance.now();
  await delay(seconds * 1000);
  counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.allSettled(pumps);
  await pub.endAsync();
  await Promise.allSettled(subs.map((c) => c.endAsync(true)));
  return { subscribers, seconds: elapsed, frames, mbPerSec: received / elapsed / 1e6 };
}

/** CPU seconds (user + system) a process has used so far, from /proc; 0 once it is gone. */
export function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of proc(5) (utime, stime), counted after the comm field; clock ticks are 100/s on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Resident memory of a process in bytes, from /proc; 0 once it is gone. */
export function procRssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
