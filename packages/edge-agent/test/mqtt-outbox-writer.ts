// Child process of mqtt-outbox.test.ts: appends messages to an outbox forever, printing each sequence number, until killed.
import { Outbox } from '../src/mqtt/outbox.js';

const outbox = await Outbox.open(process.argv[2]!, { maxMessages: 1_000_000 });
for (let i = 1; ; i++) {
  const seq = await outbox.append('kd/v1/lab/devices/d1/events', Buffer.from(`message ${i} `.repeat(200)), { qos: 1 });
  process.stdout.write(`${seq}\n`);
}
