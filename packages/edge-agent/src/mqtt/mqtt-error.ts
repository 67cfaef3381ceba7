import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link MqttError}. */
export type MqttErrorCode =
  | 'MQTT_TLS_FILE'
  | 'MQTT_CLOSED'
  | 'MQTT_CONNECT_REFUSED'
  | 'MQTT_PUBLISH_REJECTED'
  | 'MQTT_SUBSCRIBE_REJECTED'
  | 'MQTT_OUTBOX_CLOSED'
  | 'MQTT_OUTBOX_IO';

/** A failure of the agent's MQTT session or its disk outbox; `code` says which. */
export class MqttError extends KdEdgeError {
  declare readonly code: MqttErrorCode;
  constructor(code: MqttErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
