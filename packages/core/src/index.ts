// @kd-edge/core: everything about a model except training. Each part is also its own entry point
// (`@kd-edge/core/protocol`, `/package`, `/detect`, …) so a consumer loads only what it uses: kd-fleet never
// loads onnxruntime-node, which only `quant` and `runtime` need.

export * from './util/index.js';
export * from './detect/index.js';
export * from './model/index.js';
export * from './export/index.js';
export * from './onnx/index.js';
export * from './quant/index.js';
export * from './package/index.js';
export * from './runtime/index.js';
export * from './tensorrt/index.js';
export * from './protocol/index.js';
