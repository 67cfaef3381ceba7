/** A parsed ultralytics dataset YAML with absolute paths. */
export interface DatasetConfig {
  /** The YAML file it came from. */
  file: string;
  /** Absolute dataset root (`path`, relative to the YAML's folder when relative). */
  root: string;
  /** Class names, index = class id. */
  names: string[];
  nc: number;
  /** Each split's sources as absolute paths (folders of images, or .txt lists of image paths). */
  train: string[];
  val: string[];
  test?: string[];
}

/** One verified image of a split and its labels. */
export interface DatasetItem {
  image: string;
  /** Rows of [cls, cx, cy, w, h], normalised to the image, duplicates removed. Empty: background. */
  labels: Float32Array;
  /** The image's [width, height] in pixels, as the scan read it (absent for items made by hand). */
  size?: [number, number];
}

/** Augmentation hyperparameters, ultralytics names and meanings (hyp.scratch-low.yaml). */
export interface AugmentHyp {
  hsv_h: number;
  hsv_s: number;
  hsv_v: number;
  degrees: number;
  translate: number;
  scale: number;
  shear: number;
  fliplr: number;
  flipud: number;
  mosaic: number;
}

/** Letterbox geometry of one image in a batch: resized by `ratio`, then padded by `pad` (left, top). */
export interface ImageShape {
  /** Original [height, width]. */
  orig: [number, number];
  ratio: [number, number];
  pad: [number, number];
}

/** Images and their targets: a batch, or the part of one that a pass or a replica differentiates. */
export interface Shard {
  /** NHWC, RGB, float32 in 0..1; length n*height*width*3. */
  images: Float32Array;
  n: number;
  height: number;
  width: number;
  /** Rows of [imageIndexInBatch, cls, cx, cy, w, h], normalised to the batch image size. */
  targets: Float32Array;
  nTargets: number;
}

/** One batch ready for a training or validation step. */
export interface Batch extends Shard {
  files: string[];
  shapes: ImageShape[];
  /**
   * Positions in the batch of images without labels (`kd-trainer distill --unlabeled`): their targets
   * are the teacher's pseudo-labels, added before the step. Absent when every image is labelled.
   */
  unlabeled?: number[];
}
