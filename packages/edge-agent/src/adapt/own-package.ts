import { verifyPackage, type VerifiedPackage, type VerifyOptions } from '@kd-edge/core';
import type { DeviceKey } from './device-key.js';

/**
 * Verify a package the device made itself (an on-device adaptation) against the device's own key and nothing
 * else: the same checks as a deploy (signature, every file's size and hash, no unlisted or missing file), but a
 * package signed by a fleet key is refused here with PACKAGE_KEY_UNTRUSTED, as a device-signed package is refused
 * by a deploy. Never use it for anything that arrived over the network.
 * @example
 * const { manifest } = await verifyOwnPackage(join(dataDir, 'adapt', 'out'), agent.deviceKey);
 */
export async function verifyOwnPackage(
  pathDirOrTar: string, deviceKey: Pick<DeviceKey, 'publicKey'>, options: Omit<VerifyOptions, 'trustedKeys'> = {},
): Promise<VerifiedPackage> {
  if (typeof deviceKey !== 'object' || deviceKey === null || deviceKey.publicKey?.type !== 'public') {
    throw new TypeError('deviceKey must be the device key (loadOrCreateDeviceKey), with its public KeyObject');
  }
  return verifyPackage(pathDirOrTar, { ...options, trustedKeys: [deviceKey.publicKey] });
}
