import type { ParamSpec } from '@kd-edge/core';

/**
 * Initial values of one state tensor: PyTorch's default conv/linear init (uniform ±1/√fan_in, which is
 * what kaiming_uniform with a=√5 gives), BatchNorm γ=1 β=0, running stats 0/1, and YOLOv5's Detect
 * bias prior (`_initialize_biases`).
 */
export function initialValues(spec: ParamSpec, rand: () => number): Float32Array {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  const init = spec.init;
  if (init.kind === 'fill') {
    out.fill(init.value);
    return out;
  }
  for (let i = 0; i < size; i++) out[i] = (rand() * 2 - 1) * init.bound;
  if (init.kind === 'detectBias') {
    const no = init.nc + 5;
    // Objectness prior: 8 objects per 640² image; class prior: 0.6 spread over nc classes.
    const obj = Math.log(8 / (640 / init.stride) ** 2);
    const cls = Math.log(0.6 / (init.nc - 0.99));
    for (let a = 0; a < init.na; a++) {
      out[a * no + 4] += obj;
      for (let c = 0; c < init.nc; c++) out[a * no + 5 + c] += cls;
    }
  }
  return out;
}
