import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'bin/kd-trainer': 'src/bin/kd-trainer.ts',
    // Worker-thread entries are loaded by path at run time, so they must be files of their own.
    'data/loader-worker': 'src/data/loader-worker.ts',
    'train/grad-worker': 'src/train/grad-worker.ts',
    // The gradient worker imports a plug-in's loss module by URL (TrainHooks' extraLoss.module).
    'distill/replica-loss': 'src/distill/replica-loss.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
  // Optional native backends are imported by computed names; keep every dependency external.
  skipNodeModulesBundle: true,
});
