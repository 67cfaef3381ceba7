/** Protobuf wire types (the low three bits of a field key). */
export const WireType = {
  VARINT: 0,
  FIXED64: 1,
  LEN: 2,
  START_GROUP: 3,
  END_GROUP: 4,
  FIXED32: 5,
} as const;

/** One of the wire types in {@link WireType}. */
export type WireTypeValue = (typeof WireType)[keyof typeof WireType];

/** The field key for `field` with wire type `wireType`, as {@link ProtoReader.readTag} returns it. */
export function fieldTag(field: number, wireType: WireTypeValue): number {
  return field * 8 + wireType;
}

/** Whether the platform stores typed-array elements little-endian (protobuf's byte order). */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
