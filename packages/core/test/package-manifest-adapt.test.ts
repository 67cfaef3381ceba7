import { describe, expect, it } from 'vitest';
import { adaptRecipeSchema, MAX_ADAPT_EPOCHS } from '../src/protocol/command.js';
import { generateKeyPair } from '../src/package/keys.js';
import { parseManifest, parseManifestAdapt, type Manifest } from '../src/package/manifest.js';
import { signManifest, verifyManifestSignature } from '../src/package/sign.js';

// A manifest's `adapt.recipe` (issue 16, "the recipe from the package"): the `adapt` command's recipe keys and bounds,
// refused field by field like every other manifest field.
function manifest(adapt?: unknown): Record<string, unknown> {
  return {
    manifestVersion: 1, name: 'shapes', version: '1.0.0', createdAt: '2026-05-01T12:00:00Z', task: 'detect',
    input: {
      name: 'images', shape: [1, 3, 64, 64], layout: 'NCHW', dtype: 'float32',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, letterbox: { color: [114, 114, 114], auto: false, stride: 32 },
    },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: [1, 252, 7] },
    names: ['a', 'b'], strides: [32], anchors: [[10, 13, 16, 30]], precision: 'fp32',
    models: [{ file: 'model.onnx', precision: 'fp32', format: 'onnx' }],
    files: [{ path: 'model.onnx', sha256: 'a'.repeat(64), size: 1 }], metrics: {},
    ...(adapt === undefined ? {} : { adapt }),
  };
}

const message = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect((err as { code?: string }).code).toBe('PACKAGE_MANIFEST_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('manifest adapt.recipe', () => {
  it('keeps a recipe within the bounds, and a manifest without one has no adapt field', () => {
    const m = parseManifest(manifest({ recipe: { epochs: 5, imgsz: 64, lr0: 0.001, pseudoConf: 0.4, holdout: 0.25, timeBudgetSec: 600, memoryBudgetMb: 900, minGain: -0.5, maxLoss: 0.03 } }));
    expect(m.adapt).toEqual({ recipe: { epochs: 5, imgsz: 64, lr0: 0.001, pseudoConf: 0.4, holdout: 0.25, timeBudgetSec: 600, memoryBudgetMb: 900, minGain: -0.5, maxLoss: 0.03 } });
    expect(parseManifest(manifest({ recipe: {} })).adapt).toEqual({ recipe: {} });
    expect('adapt' in parseManifest(manifest())).toBe(false);
  });

  it('refuses out-of-bounds values naming the field, the value and the bound', () => {
    expect(message(() => parseManifest(manifest({ recipe: { epochs: 0 } })))).toBe('invalid manifest field adapt.recipe.epochs: 0 (allowed: an integer >= 1)');
    expect(message(() => parseManifest(manifest({ recipe: { epochs: MAX_ADAPT_EPOCHS + 1 } })))).toMatch(/^invalid manifest field adapt\.recipe\.epochs: 1001 \(allowed: an integer <= 1000\)$/);
    expect(message(() => parseManifest(manifest({ recipe: { epochs: 2.5 } })))).toMatch(/adapt\.recipe\.epochs: 2\.5 \(allowed: an integer\)/);
    expect(message(() => parseManifest(manifest({ recipe: { lr0: 0 } })))).toMatch(/adapt\.recipe\.lr0: 0 \(allowed: a number > 0\)/);
    expect(message(() => parseManifest(manifest({ recipe: { holdout: 0.95 } })))).toMatch(/adapt\.recipe\.holdout: 0\.95 \(allowed: a number <= 0\.9\)/);
    expect(message(() => parseManifest(manifest({ recipe: { memoryBudgetMb: 10 } })))).toMatch(/adapt\.recipe\.memoryBudgetMb: 10 \(allowed: an integer >= 64\)/);
    expect(message(() => parseManifest(manifest({ recipe: { imgsz: '320' } })))).toMatch(/adapt\.recipe\.imgsz: "320" \(allowed: an integer\)/);
    expect(message(() => parseManifest(manifest({ recipe: { batch: 4 } })))).toMatch(/adapt\.recipe\.batch: 4 \(allowed: no such field; known: epochs, imgsz, lr0/);
    expect(message(() => parseManifest(manifest({ recipe: 5 })))).toMatch(/adapt\.recipe: 5 \(allowed: an object of recipe values/);
    expect(message(() => parseManifest(manifest({ recipe: {}, extra: 1 })))).toMatch(/adapt\.extra: 1 \(allowed: no such field; known: recipe\)/);
    expect(message(() => parseManifest(manifest({})))).toMatch(/adapt\.recipe: missing \(allowed: a value \(the field is required\)\)/);
  });

  it('has the keys and bounds of the adapt command\'s recipe: what one accepts the other does', () => {
    const keys = Object.keys(adaptRecipeSchema.shape);
    const probes: Record<string, unknown[]> = {
      epochs: [1, 1000, 0, 1001, 1.5], imgsz: [32, 2048, 31, 2049], lr0: [1, 0, 1.01, 1e-6], pseudoConf: [0, 1, -0.1, 1.1], holdout: [0.9, 0, 0.91, 0.1],
      timeBudgetSec: [1, 7 * 24 * 3600, 0, 7 * 24 * 3600 + 1], memoryBudgetMb: [64, 63, 1024 * 1024, 1024 * 1024 + 1], minGain: [-1, 1, -1.1, 1.1], maxLoss: [0, 1, -0.01, 1.01],
    };
    expect(Object.keys(probes).sort()).toEqual([...keys].sort());
    for (const [key, values] of Object.entries(probes)) {
      for (const v of values) {
        const command = adaptRecipeSchema.safeParse({ [key]: v }).success;
        const pkg = (() => { try { parseManifestAdapt({ recipe: { [key]: v } }); return true; } catch { return false; } })();
        expect({ key, v, pkg }).toEqual({ key, v, pkg: command });
      }
    }
  });

  it('is covered by the signature like every field', () => {
    const keys = generateKeyPair();
    const signed = signManifest(manifest({ recipe: { epochs: 3 } }) as unknown as Manifest, keys.privateKeyPem);
    expect(verifyManifestSignature(signed, [keys.publicKeyPem])).toBeTruthy();
    const tampered = { ...signed, adapt: { recipe: { epochs: 300 } } };
    expect(() => verifyManifestSignature(tampered, [keys.publicKeyPem])).toThrow();
  });
});
