import { CorruptRecordError } from './log-errors.js';
import { WireType, type WireTypeValue } from './protobuf-writer.js';

/**
 * One decoded field. `value` is a bigint for varints and the raw little-endian bytes for fixed32,
 * fixed64 and length-delimited fields; {@link ProtoMessage} interprets them by the caller's schema.
 */
export interface ProtoField {
  field: number;
  wireType: WireTypeValue;
  value: bigint | Uint8Array;
}

const TEXT = new TextDecoder('utf-8', { fatal: false });

/** Splits an encoded message into its fields, in wire order; throws {@link CorruptRecordError} on malformed input. */
export function decodeFields(bytes: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new CorruptRecordError(`protobuf: truncated varint at byte ${pos}`);
      const b = bytes[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new CorruptRecordError(`protobuf: varint longer than 10 bytes at byte ${pos}`);
  };
  const take = (n: number): Uint8Array => {
    if (pos + n > bytes.length) {
      throw new CorruptRecordError(`protobuf: field needs ${n} bytes at byte ${pos} but only ${bytes.length - pos} remain`);
    }
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  while (pos < bytes.length) {
    const key = readVarint();
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (field === 0) throw new CorruptRecordError(`protobuf: field number 0 at byte ${pos}`);
    switch (wireType) {
      case WireType.VARINT:
        fields.push({ field, wireType, value: readVarint() });
        break;
      case WireType.FIXED64:
        fields.push({ field, wireType, value: take(8) });
        break;
      case WireType.LEN:
        fields.push({ field, wireType, value: take(Number(readVarint())) });
        break;
      case WireType.FIXED32:
        fields.push({ field, wireType, value: take(4) });
        break;
      default:
        // Groups (3, 4) are obsolete and never appear in the messages we read.
        throw new CorruptRecordError(`protobuf: unsupported wire type ${wireType} for field ${field}`);
    }
  }
  return fields;
}

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/**
 * A decoded message that answers typed questions about its fields by number. For a singular field
 * that appears several times, the last occurrence wins, as protobuf specifies.
 * @example new ProtoMessage(bytes).double(1) // Event.wall_time
 */
export class ProtoMessage {
  /** All fields in wire order. */
  readonly fields: readonly ProtoField[];

  constructor(bytes: Uint8Array) {
    this.fields = decodeFields(bytes);
  }

  /** Every occurrence of `field`. */
  all(field: number): ProtoField[] {
    return this.fields.filter((f) => f.field === field);
  }

  /** Whether `field` is present. */
  has(field: number): boolean {
    return this.fields.some((f) => f.field === field);
  }

  private last(field: number, wireType: WireTypeValue): ProtoField | undefined {
    for (let i = this.fields.length - 1; i >= 0; i--) {
      const f = this.fields[i]!;
      if (f.field !== field) continue;
      if (f.wireType !== wireType) {
        throw new CorruptRecordError(`protobuf: field ${field} has wire type ${f.wireType}, expected ${wireType}`);
      }
      return f;
    }
    return undefined;
  }

  /** Varint field as an unsigned 64-bit bigint. */
  uint64(field: number): bigint | undefined {
    return this.last(field, WireType.VARINT)?.value as bigint | undefined;
  }

  /** Varint field read as int64 (two's complement) and converted to a number. */
  int(field: number): number | undefined {
    const v = this.uint64(field);
    return v === undefined ? undefined : Number(BigInt.asIntN(64, v));
  }

  /** double field. */
  double(field: number): number | undefined {
    const b = this.last(field, WireType.FIXED64)?.value as Uint8Array | undefined;
    return b && view(b).getFloat64(0, true);
  }

  /** float field. */
  float(field: number): number | undefined {
    const b = this.last(field, WireType.FIXED32)?.value as Uint8Array | undefined;
    return b && view(b).getFloat32(0, true);
  }

  /** fixed32 field. */
  fixed32(field: number): number | undefined {
    const b = this.last(field, WireType.FIXED32)?.value as Uint8Array | undefined;
    return b && view(b).getUint32(0, true);
  }

  /** bytes field (a view into the decoded buffer). */
  bytes(field: number): Uint8Array | undefined {
    return this.last(field, WireType.LEN)?.value as Uint8Array | undefined;
  }

  /** string field, UTF-8 decoded. */
  string(field: number): string | undefined {
    const b = this.bytes(field);
    return b && TEXT.decode(b);
  }

  /** Embedded message field. */
  message(field: number): ProtoMessage | undefined {
    const b = this.bytes(field);
    return b && new ProtoMessage(b);
  }

  /** Repeated embedded message field. */
  messages(field: number): ProtoMessage[] {
    return this.all(field).map((f) => {
      if (f.wireType !== WireType.LEN) throw new CorruptRecordError(`protobuf: field ${field} is not a message`);
      return new ProtoMessage(f.value as Uint8Array);
    });
  }

  /** Repeated double field, accepting both packed and unpacked encodings. */
  doubles(field: number): number[] {
    const out: number[] = [];
    for (const f of this.all(field)) {
      const b = f.value as Uint8Array;
      if (f.wireType === WireType.FIXED64) {
        out.push(view(b).getFloat64(0, true));
      } else if (f.wireType === WireType.LEN) {
        if (b.length % 8 !== 0) throw new CorruptRecordError(`protobuf: packed doubles of field ${field} are ${b.length} bytes`);
        const v = view(b);
        for (let i = 0; i < b.length; i += 8) out.push(v.getFloat64(i, true));
      } else {
        throw new CorruptRecordError(`protobuf: field ${field} has wire type ${f.wireType}, expected double`);
      }
    }
    return out;
  }
}
