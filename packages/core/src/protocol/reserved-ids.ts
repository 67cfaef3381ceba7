/**
 * Broker usernames of kd-edge's service accounts: the fleet server and the read-only dashboard. They are
 * valid device ids by the protocol's pattern, so each must be refused as one everywhere: add-broker-user.sh
 * will not provision a device with either name, docker/mosquitto/acl denies both their `devices/{name}/`
 * topics, kd-fleet ignores reports under them and never targets them, and kd-agent will not start under
 * either name (fleet's security-config.test.ts checks that the script refuses exactly these).
 */
export const RESERVED_DEVICE_IDS = ['kd-fleet', 'kd-dashboard'] as const;

/** A service account's name; see {@link RESERVED_DEVICE_IDS}. */
export type ReservedDeviceId = (typeof RESERVED_DEVICE_IDS)[number];

/** True when `id` is a service account's name and so never a device's id. */
export function isReservedDeviceId(id: string): id is ReservedDeviceId {
  return (RESERVED_DEVICE_IDS as readonly string[]).includes(id);
}
