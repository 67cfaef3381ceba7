// An embedded aedes broker over TCP for the chunk service and device registry tests (MQTT 3.1.1, as
// kd-fleet's embedded broker speaks), with a way to cut one client's socket so its last will fires.
import type { AedesHarness } from '../../edge-agent/test/mqtt-brokers.js';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** The edge-agent tests' aedes harness: `url`, `cut(clientId)` (its will then fires), `close()`. */
export type TestBroker = AedesHarness;
export { startAedes as startBroker } from '../../edge-agent/test/mqtt-brokers.js';

export async function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...options });
}

export { waitFor } from '../../edge-agent/test/mqtt-brokers.js';

/** Timers the test fires by hand: `setTimeout` only records, `fire()` runs what is due, in order. */
export class ManualTimers {
  readonly #pending = new Map<number, () => void>();
  #next = 1;
  readonly setTimeout = (fn: () => void): unknown => {
    const id = this.#next++;
    this.#pending.set(id, fn);
    return id;
  };
  readonly clearTimeout = (handle: unknown): void => {
    this.#pending.delete(handle as number);
  };
  get pending(): number {
    return this.#pending.size;
  }
  /** Run every timer set so far. */
  fire(): void {
    const due = [...this.#pending.values()];
    this.#pending.clear();
    for (const fn of due) fn();
  }
}
