import { defineConfig } from 'tsup';

export default defineConfig({
  // The root and one entry per part (package.json "exports"), so `@kd-edge/core/protocol` loads no ONNX Runtime.
  entry: ['src/index.ts', ...['protocol', 'package', 'detect', 'onnx', 'quant', 'tensorrt', 'model', 'export', 'runtime', 'util'].map((p) => `src/${p}/index.ts`)],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
