/** One layer of a YOLOv5 model description, as in ultralytics' yaml: [from, repeats, module, args]. */
export type LayerSpec = [number | number[], number, string, unknown[]];

/** Serialisable description of a YOLOv5-family detector (ultralytics yaml keys). */
export interface YoloDescription {
  type: 'yolov5';
  /** Size name when it is a standard one (n, s, m, l, x), else 'custom'. */
  scale: string;
  nc: number;
  depth_multiple: number;
  width_multiple: number;
  /** Per level, pixel anchors flattened [w0, h0, w1, h1, w2, h2]. */
  anchors: number[][];
  backbone: LayerSpec[];
  head: LayerSpec[];
  names?: string[];
}

/** Serialisable description of a small image classifier. */
export interface ClassifierDescription {
  type: 'classifier';
  scale: string;
  nc: number;
  depth_multiple: number;
  width_multiple: number;
  names?: string[];
  [key: string]: unknown;
}

/** Any model kd-edge trains, exports and packages. */
export type ModelDescription = YoloDescription | ClassifierDescription;

/**
 * A model's state by ultralytics state_dict name, each tensor in the layout of its {@link ParamSpec}
 * shape (convolutions [kh, kw, cin, cout], linear [in, out]): what the trainer's `.kdw` files hold.
 */
export type ModelWeights = ReadonlyMap<string, Float32Array>;
