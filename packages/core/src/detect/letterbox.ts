import type { BoxXYXY } from './types.js';

/** Options of {@link letterbox}; the defaults are those ultralytics val.py uses for square images. */
export interface LetterboxOptions {
  /** Allow enlarging small images (default true); false only ever shrinks, as ultralytics val does. */
  scaleup?: boolean;
  /** Pad only up to the next multiple of `stride` instead of the full `newShape` (default false). */
  auto?: boolean;
  /** Stride used by `auto` (default 32). */
  stride?: number;
}

/** The geometry of a letterboxed image; all sizes in pixels. */
export interface LetterboxGeometry {
  /** Resize gain, new / old, the same for both axes. */
  ratio: number;
  /** Where the resized image starts in the padded one: [left, top] (integers). */
  pad: [number, number];
  /** Size of the resized image before padding: [width, height]. */
  newUnpad: [number, number];
  /** Half the total padding as ultralytics returns it, [dw, dh] (may end in .5); val.py maps boxes back with it. */
  dwdh: [number, number];
  /** Size of the padded image: [height, width]. */
  shape: [number, number];
}

/** Python's round(): ties go to the even neighbour; never returns −0. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0 ? r - 1 : r) + 0;
}

function checkShape(name: string, shape: readonly number[]): void {
  if (shape.length !== 2 || !shape.every((v) => Number.isFinite(v) && v > 0)) {
    throw new RangeError(`${name} must be [height, width] with positive sizes, got ${JSON.stringify(shape)}`);
  }
}

/**
 * The geometry of ultralytics' `letterbox`: resize `shape` ([height, width]) keeping its aspect
 * ratio to fit `newShape` (a square size or [height, width]), then pad, the padding split evenly
 * with ultralytics' `round(d/2 ± 0.1)`. No pixels are touched.
 * @example
 * letterbox([480, 640], 640); // { ratio: 1, pad: [0, 80], newUnpad: [640, 480], ... }
 */
export function letterbox(
  shape: readonly [number, number],
  newShape: number | readonly [number, number],
  options: LetterboxOptions = {},
): LetterboxGeometry {
  checkShape('shape', shape);
  const target: readonly [number, number] = typeof newShape === 'number' ? [newShape, newShape] : newShape;
  checkShape('newShape', target);
  const stride = options.stride ?? 32;
  if (!Number.isInteger(stride) || stride <= 0) throw new RangeError(`stride must be a positive integer, got ${stride}`);

  let r = Math.min(target[0] / shape[0], target[1] / shape[1]);
  if (options.scaleup === false) r = Math.min(r, 1);
  const newUnpad: [number, number] = [roundHalfEven(shape[1] * r), roundHalfEven(shape[0] * r)];
  let dw = target[1] - newUnpad[0];
  let dh = target[0] - newUnpad[1];
  if (options.auto) {
    dw = ((dw % stride) + stride) % stride;
    dh = ((dh % stride) + stride) % stride;
  }
  dw /= 2;
  dh /= 2;
  const top = roundHalfEven(dh - 0.1);
  const bottom = roundHalfEven(dh + 0.1);
  const left = roundHalfEven(dw - 0.1);
  const right = roundHalfEven(dw + 0.1);
  return {
    ratio: r,
    pad: [left, top],
    newUnpad,
    dwdh: [dw, dh],
    shape: [top + newUnpad[1] + bottom, left + newUnpad[0] + right],
  };
}

/**
 * Maps xyxy boxes from a letterboxed image back to the original one, as ultralytics
 * `scale_boxes`: subtract `pad` ([x, y]), divide by `ratio`, clip to `origShape` ([height, width]).
 * Takes boxes as tuples or as a flat [n·4] array, and returns new ones of the same kind.
 */
export function scaleBoxes(
  boxes: readonly BoxXYXY[],
  ratio: number,
  pad: readonly [number, number],
  origShape: readonly [number, number],
): BoxXYXY[];
export function scaleBoxes(
  boxes: Float32Array,
  ratio: number,
  pad: readonly [number, number],
  origShape: readonly [number, number],
): Float32Array;
export function scaleBoxes(
  boxes: readonly BoxXYXY[] | Float32Array,
  ratio: number,
  pad: readonly [number, number],
  origShape: readonly [number, number],
): BoxXYXY[] | Float32Array {
  if (!(ratio > 0) || !Number.isFinite(ratio)) throw new RangeError(`ratio must be a positive number, got ${ratio}`);
  checkShape('origShape', origShape);
  const [h0, w0] = origShape;
  const mapX = (x: number): number => Math.min(Math.max((x - pad[0]) / ratio, 0), w0);
  const mapY = (y: number): number => Math.min(Math.max((y - pad[1]) / ratio, 0), h0);
  if (boxes instanceof Float32Array) {
    if (boxes.length % 4 !== 0) throw new RangeError(`boxes must hold n·4 values, got ${boxes.length}`);
    const out = new Float32Array(boxes.length);
    for (let i = 0; i < boxes.length; i += 4) {
      out[i] = mapX(boxes[i]);
      out[i + 1] = mapY(boxes[i + 1]);
      out[i + 2] = mapX(boxes[i + 2]);
      out[i + 3] = mapY(boxes[i + 3]);
    }
    return out;
  }
  return boxes.map((b): BoxXYXY => [mapX(b[0]), mapY(b[1]), mapX(b[2]), mapY(b[3])]);
}
