import { describe, expect, it } from 'vitest';
import { classifierDescription } from '../src/model/classifier-description.js';
import { countParams } from '../src/model/param-count.js';
import { makeDivisible, planLayers, pyRound } from '../src/model/plan.js';
import { DEFAULT_ANCHORS, parseModelYaml, planYolo, yoloDescription } from '../src/model/yolo-description.js';

// ultralytics yolov5 v6.0+ model summaries at nc=80: unfused (training) counts, and the fused counts
// of the published tables (BatchNorm folded into a conv bias).
const PUBLISHED = {
  n: { unfused: 1_872_157, fused: 1_867_405, approx: 1.9e6 },
  s: { unfused: 7_235_389, fused: 7_225_885, approx: 7.2e6 },
  m: { unfused: 21_190_557, fused: 21_172_173, approx: 21.2e6 },
  l: { unfused: 46_563_709, fused: 46_533_693, approx: 46.5e6 },
  x: { unfused: 86_749_405, fused: 86_705_005, approx: 86.7e6 },
} as const;

const YOLOV5S_YAML = `
# Parameters
nc: 80  # number of classes
depth_multiple: 0.33  # model depth multiple
width_multiple: 0.50  # layer channel multiple
anchors:
  - [10,13, 16,30, 33,23]  # P3/8
  - [30,61, 62,45, 59,119]  # P4/16
  - [116,90, 156,198, 373,326]  # P5/32
backbone:
  [[-1, 1, Conv, [64, 6, 2, 2]],  # 0-P1/2
   [-1, 1, Conv, [128, 3, 2]],  # 1-P2/4
   [-1, 3, C3, [128]],
   [-1, 1, Conv, [256, 3, 2]],  # 3-P3/8
   [-1, 6, C3, [256]],
   [-1, 1, Conv, [512, 3, 2]],  # 5-P4/16
   [-1, 9, C3, [512]],
   [-1, 1, Conv, [1024, 3, 2]],  # 7-P5/32
   [-1, 3, C3, [1024]],
   [-1, 1, SPPF, [1024, 5]],  # 9
  ]
head:
  [[-1, 1, Conv, [512, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 6], 1, Concat, [1]],  # cat backbone P4
   [-1, 3, C3, [512, False]],  # 13
   [-1, 1, Conv, [256, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 4], 1, Concat, [1]],  # cat backbone P3
   [-1, 3, C3, [256, False]],  # 17 (P3/8-small)
   [-1, 1, Conv, [256, 3, 2]],
   [[-1, 14], 1, Concat, [1]],  # cat head P4
   [-1, 3, C3, [512, False]],  # 20 (P4/16-medium)
   [-1, 1, Conv, [512, 3, 2]],
   [[-1, 10], 1, Concat, [1]],  # cat head P5
   [-1, 3, C3, [1024, False]],  # 23 (P5/32-large)
   [[17, 20, 23], 1, Detect, [nc, anchors]],  # Detect(P3, P4, P5)
  ]
`;

describe('scaling helpers', () => {
  it('rounds like Python 3 and makes channels divisible by 8', () => {
    expect([pyRound(0.99), pyRound(2.97), pyRound(1.98), pyRound(2.5), pyRound(3.5), pyRound(11.97)]).toEqual([1, 3, 2, 2, 4, 12]);
    expect([makeDivisible(16), makeDivisible(17), makeDivisible(1280), makeDivisible(0.25 * 1024)]).toEqual([16, 24, 1280, 256]);
  });
});

describe('yoloDescription', () => {
  it('sets the published multipliers and anchors', () => {
    const d = yoloDescription('m', 3);
    expect([d.depth_multiple, d.width_multiple, d.scale, d.nc]).toEqual([0.67, 0.75, 'm', 3]);
    expect(d.anchors).toEqual(DEFAULT_ANCHORS);
    expect(d.backbone).toHaveLength(10);
    expect(d.head).toHaveLength(15);
    expect(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, 1).scale).toBe('n');
    expect(yoloDescription({ depth_multiple: 0.5, width_multiple: 0.3 }, 1).scale).toBe('custom');
  });

  it('scales channels and repeats of yolov5n as ultralytics does', () => {
    const { layers, strides, maxStride } = planYolo(yoloDescription('n', 80));
    expect(layers.map((l) => l.c2).slice(0, 10)).toEqual([16, 32, 32, 64, 64, 128, 128, 256, 256, 256]);
    const c3Depths = layers.flatMap((l) => (l.type === 'C3' ? [l.m.length] : []));
    expect(c3Depths).toEqual([1, 2, 3, 1, 1, 1, 1, 1]);
    expect(strides).toEqual([8, 16, 32]);
    expect(maxStride).toBe(32);
    const l = planYolo(yoloDescription('x', 80)).layers;
    expect(l.flatMap((x) => (x.type === 'C3' ? [x.m.length] : []))).toEqual([4, 8, 12, 4, 4, 4, 4, 4]);
    expect(l[9]!.c2).toBe(1280);
  });

  it('rejects bad nc, multipliers and anchors with a RangeError naming the field', () => {
    expect(() => yoloDescription('n', 0)).toThrow(/^nc:/);
    expect(() => yoloDescription('n', 2.5)).toThrow(RangeError);
    expect(() => yoloDescription({ depth_multiple: 0, width_multiple: 1 }, 3)).toThrow(/depth_multiple/);
    expect(() => yoloDescription({ depth_multiple: 1, width_multiple: -1 }, 3)).toThrow(/width_multiple/);
    expect(() => yoloDescription('q' as 'n', 3)).toThrow(/scale/);
    expect(() => yoloDescription('n', 3, [[10, 13, 16]])).toThrow(/anchors/);
    expect(() => yoloDescription('n', 3, [[10, 13], [1, 2]])).toThrow(/anchors: 2 levels/);
  });

  it('plans a 2-anchor custom anchor set', () => {
    const d = yoloDescription('n', 2, [[10, 13, 16, 30], [30, 61, 62, 45], [116, 90, 156, 198]]);
    const detect = planYolo(d).layers.at(-1)!;
    expect(detect.type === 'Detect' && detect.na).toBe(2);
    expect(detect.c2).toBe(2 * 7);
  });
});

describe('parameter counts at nc=80', () => {
  it.each(Object.entries(PUBLISHED))('yolov5%s matches ultralytics exactly (unfused and fused)', (scale, ref) => {
    const d = yoloDescription(scale as 'n', 80);
    const n = countParams(d);
    expect(n).toBe(ref.unfused);
    expect(countParams(d, { fused: true })).toBe(ref.fused);
    expect(Math.abs(n - ref.approx) / ref.approx).toBeLessThan(0.02);
  });

  it('counts the classifier family like YOLOv5-cls at 1000 classes', () => {
    // Published YOLOv5-cls table: n 2.5 M, s 5.4 M, m 12.9 M.
    for (const [scale, millions] of [['n', 2.5], ['s', 5.4], ['m', 12.9]] as const) {
      const n = countParams(classifierDescription(scale, 1000), { fused: true });
      expect(Math.abs(n / 1e6 - millions) / millions).toBeLessThan(0.02);
    }
  });
});

describe('parseModelYaml', () => {
  it('reads an ultralytics yolov5s.yaml into the standard description', () => {
    const d = parseModelYaml(YOLOV5S_YAML);
    expect(d).toEqual(yoloDescription('s', 80));
    expect(countParams(d)).toBe(PUBLISHED.s.unfused);
  });

  it('reads a custom yaml (nc, names, multipliers) and marks it custom', () => {
    const text = YOLOV5S_YAML.replace('nc: 80', 'nc: 4\nnames: [a, b, c, d]').replace('0.50  # layer', '0.125  # layer')
      .replace('[-1, 9, C3, [512]]', '[-1, 3, C3, [512]]');
    const d = parseModelYaml(text);
    expect(d.scale).toBe('custom');
    expect(d.nc).toBe(4);
    expect(d.names).toEqual(['a', 'b', 'c', 'd']);
    expect(planYolo(d).layers[6]!.type === 'C3' && (planYolo(d).layers[6] as { m: unknown[] }).m.length).toBe(1);
  });

  it('rejects unsupported modules, bad wiring and autoanchor counts', () => {
    expect(() => parseModelYaml(YOLOV5S_YAML.replace('SPPF, [1024, 5]', 'SPP, [1024, [5, 9, 13]]'))).toThrow(/module: "SPP"/);
    expect(() => parseModelYaml(YOLOV5S_YAML.replace('[[-1, 6], 1, Concat', '[[-1, 30], 1, Concat'))).toThrow(/does not refer/);
    expect(() => parseModelYaml(YOLOV5S_YAML.replace('[[-1, 6], 1, Concat', '[[-1, 4], 1, Concat'))).toThrow(/different strides/);
    expect(() => parseModelYaml('nc: 3\nanchors: 3\nbackbone: []\nhead: []')).toThrow(/autoanchor/);
    expect(() => parseModelYaml('nc: [')).toThrow(RangeError);
    expect(() => planLayers([[-1, 1, 'Conv', [16, 3, 1, null, 2]]], { depth_multiple: 1, width_multiple: 1, nc: 1, anchors: [[1, 1]] }))
      .toThrow(/grouped/);
  });
});
