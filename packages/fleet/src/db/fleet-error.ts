import { KdEdgeError } from '@kd-edge/core/util';

/** Stable codes of {@link FleetError} raised by the database, registry, artifact and device parts of kd-fleet. */
export type FleetErrorCode =
  | 'FLEET_DB_NEWER'
  | 'FLEET_DB_MIGRATION'
  | 'FLEET_DB_MIGRATION_CHANGED'
  | 'FLEET_PACKAGE_REFUSED'
  | 'FLEET_PACKAGE_EXISTS'
  | 'FLEET_PACKAGE_NOT_FOUND'
  | 'FLEET_DEVICE_NOT_FOUND'
  | 'FLEET_DEVICE_KEY_CONFLICT'
  | 'FLEET_RESERVED_DEVICE_ID'
  | 'FLEET_CONFIG'
  | 'FLEET_BAD_REQUEST'
  | 'FLEET_NOT_FOUND';

/** A refusal or failure of kd-fleet's state (database, registry, devices); `code` says which rule failed. */
export class FleetError extends KdEdgeError {
  declare readonly code: FleetErrorCode;
  constructor(code: FleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
