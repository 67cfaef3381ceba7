/**
 * Decoded images kept once for every thread of a loader (`--cache ram`): the loader makes the cache,
 * its data workers (or the in-process builder) fill and read it. Without it each worker kept its own
 * copy of every image it had seen, which with mosaic is soon every image: N workers, N copies.
 *
 * Storage: one slot per dataset image, `slotBytes` each, in SharedArrayBuffers of at most 1 GiB. Memory
 * is committed by the OS only where an image is written, so reserving a slot per image costs address
 * space, not RAM. Slot state: 0 empty, 1 being written, 2 ready; a thread claims an empty slot with a
 * compare-and-swap, so two workers that decode the same image never write the same slot.
 */

const EMPTY = 0;
const WRITING = 1;
const READY = 2;
/** Int32 fields per slot: state, height, width, byte length. */
const INTS = 4;
/** Float64 fields per slot: whatever the caller stores beside the pixels (letterbox geometry). */
const FLOATS = 6;
const SLAB_BYTES = 2 ** 30;

/** What a worker needs to attach to the same cache (structured-clone friendly). */
export interface SharedImageCacheInit {
  meta: SharedArrayBuffer;
  slabs: SharedArrayBuffer[];
  slotBytes: number;
  perSlab: number;
  count: number;
}

/** One cached image: a view into shared memory (do not write to it). */
export interface CachedImage {
  data: Uint8Array;
  height: number;
  width: number;
  /** The numbers stored with it (up to 6). */
  info: number[];
}

export class SharedImageCache {
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  private readonly slabs: Uint8Array[];

  private constructor(readonly init: SharedImageCacheInit) {
    this.ints = new Int32Array(init.meta, 0, init.count * INTS);
    this.floats = new Float64Array(init.meta, align8(init.count * INTS * 4), init.count * FLOATS);
    this.slabs = init.slabs.map((s) => new Uint8Array(s));
  }

  /**
   * A cache of `count` slots of `slotBytes` each.
   * @example const cache = SharedImageCache.create(items.length, 3 * 640 * 640);
   */
  static create(count: number, slotBytes: number): SharedImageCache {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`SharedImageCache: count must be a non-negative integer, got ${count}`);
    if (!Number.isInteger(slotBytes) || slotBytes <= 0 || slotBytes > SLAB_BYTES) {
      throw new RangeError(`SharedImageCache: slotBytes must be an integer in 1..${SLAB_BYTES}, got ${slotBytes}`);
    }
    const perSlab = Math.floor(SLAB_BYTES / slotBytes);
    const slabs: SharedArrayBuffer[] = [];
    for (let left = count; left > 0; left -= perSlab) slabs.push(new SharedArrayBuffer(Math.min(left, perSlab) * slotBytes));
    const meta = new SharedArrayBuffer(align8(count * INTS * 4) + count * FLOATS * 8);
    return new SharedImageCache({ meta, slabs, slotBytes, perSlab, count });
  }

  /** The same cache, seen from another thread. */
  static attach(init: SharedImageCacheInit): SharedImageCache {
    return new SharedImageCache(init);
  }

  /** The image in slot `index`, or undefined while it is empty or being written. */
  get(index: number): CachedImage | undefined {
    if (!this.has(index) || Atomics.load(this.ints, index * INTS) !== READY) return undefined;
    const m = index * INTS;
    const bytes = this.ints[m + 3]!;
    const slab = this.slabs[Math.floor(index / this.init.perSlab)]!;
    const at = (index % this.init.perSlab) * this.init.slotBytes;
    return {
      data: slab.subarray(at, at + bytes),
      height: this.ints[m + 1]!,
      width: this.ints[m + 2]!,
      info: Array.from(this.floats.subarray(index * FLOATS, index * FLOATS + FLOATS)),
    };
  }

  /**
   * Stores an image in slot `index` unless the slot is taken (filled, or being filled by another
   * thread) or the image does not fit; returns whether it was stored.
   */
  put(index: number, data: Uint8Array, height: number, width: number, info: readonly number[] = []): boolean {
    if (!this.has(index) || data.byteLength > this.init.slotBytes || info.length > FLOATS) return false;
    const m = index * INTS;
    if (Atomics.compareExchange(this.ints, m, EMPTY, WRITING) !== EMPTY) return false;
    const slab = this.slabs[Math.floor(index / this.init.perSlab)]!;
    slab.set(data, (index % this.init.perSlab) * this.init.slotBytes);
    this.ints[m + 1] = height;
    this.ints[m + 2] = width;
    this.ints[m + 3] = data.byteLength;
    this.floats.set(info, index * FLOATS);
    // The store publishes the pixels and fields above to every thread that then loads READY.
    Atomics.store(this.ints, m, READY);
    return true;
  }

  private has(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.init.count;
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
