// Test harness of the simulator tests: an embedded aedes broker, watching clients, polling, and a signed package
// served like kd-fleet's artifact service would (the edge-agent's stand-in origin).
import type { AedesHarness } from '../../edge-agent/test/mqtt-brokers.js';
import mqtt, { type MqttClient } from 'mqtt';
import { makeCommand, type CommandFields, type EventMessage } from '@kd-edge/core';
import type { DetectorPackage } from '../../edge-agent/test/fixtures/agent/detector-package.js';
import type { PackageOrigin } from '../../edge-agent/test/fixtures/agent/package-origin.js';

export { makeDetectorPackage } from '../../edge-agent/test/fixtures/agent/detector-package.js';
export { PackageOrigin } from '../../edge-agent/test/fixtures/agent/package-origin.js';
export type { DetectorPackage };

/** An aedes 1.2 broker on a free local port (MQTT 3.1.1): the edge-agent tests' harness. */
export type Broker = AedesHarness;
export { startAedes as startBroker } from '../../edge-agent/test/mqtt-brokers.js';

/** A fleet-side client that records every status, event and bench report of the fleet, parsed. */
export interface Watcher {
  client: MqttClient;
  /** Latest status per device (retained ones included). */
  status: Map<string, Record<string, unknown>>;
  /** Every status in arrival order. */
  statuses: Array<Record<string, unknown>>;
  events: EventMessage[];
  benches: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function watch(url: string, fleet: string): Promise<Watcher> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, protocolVersion: 4 });
  const w: Watcher = {
    client, status: new Map(), statuses: [], events: [], benches: [],
    close: () => client.endAsync(),
  };
  client.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    const body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    const leaf = topic.split('/').pop();
    if (leaf === 'status') {
      w.status.set(body.deviceId as string, body);
      w.statuses.push(body);
    } else if (leaf === 'events') w.events.push(body as unknown as EventMessage);
    else if (leaf === 'bench') w.benches.push(body);
  });
  await client.subscribeAsync([`kd/v1/${fleet}/devices/+/status`, `kd/v1/${fleet}/devices/+/events`, `kd/v1/${fleet}/devices/+/bench`], { qos: 1 });
  return w;
}

export { waitFor } from '../../edge-agent/test/mqtt-brokers.js';

/** Publishes a command as the fleet would. */
export async function send(client: MqttClient, fleet: string, fields: CommandFields): Promise<void> {
  await client.publishAsync(`kd/v1/${fleet}/devices/${fields.deviceId}/cmd`, JSON.stringify(makeCommand(fields)), { qos: 1 });
}

/** A deploy command of `p` for one device, fetched over HTTP from `origin`. */
export function deployOf(p: DetectorPackage, origin: PackageOrigin, deviceId: string, id: string): CommandFields {
  return {
    command: 'deploy', id, deviceId,
    package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url: origin.add(p.tar, p.sha256) } },
    manifest: p.manifest,
  } as CommandFields;
}

const FINAL = new Set(['succeeded', 'failed', 'rolled_back']);

/** The final event of a command, if it came. */
export function finalOf(w: Watcher, commandId: string): EventMessage | undefined {
  return [...w.events].reverse().find((e) => e.commandId === commandId && FINAL.has(e.state));
}
